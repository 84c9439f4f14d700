"""One way to score a model's maps against a region: every map is brought to the region's
pixels (at most :data:`SCORE_SIDE` on a side) and scored by :func:`annotations.scores.agreement`,
with the pointing game's tolerance set in micrometres (design.md §3)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from annotations.records import ScoreRecord
from annotations.scores import agreement
from lran_core.maps import resize_map

DEFAULT_TOLERANCE_UM = 15.0
# Regions are scored on a grid of at most this many pixels on the longer side. Maps are kept
# at most 1024 px on a side (lran_core.region.MAP_SIDE), so a finer grid adds nothing of the
# map; at full size a 6000 x 6000 region took 4 GB and two minutes to score its nine maps.
SCORE_SIDE = 2048
# An operator's choice of the pointing game's tolerance, in µm, for every score the app stores.
ENV_TOLERANCE = "LRAN_TOLERANCE_UM"


@dataclass(frozen=True)
class ScoreInfo:
    """How a score is named and explained to a reader: ``label`` (plain), ``explanation`` (one
    line, with its chance level)."""

    label: str
    explanation: str


# The one vocabulary of the scores, in SCORE_NAMES order.
SCORE_INFO: dict[str, ScoreInfo] = {
    "pointing_game": ScoreInfo(
        "pointing game",
        "a hit when the map's strongest point is in your region or within the tolerance of it; "
        "by chance about as often as the region (widened by the tolerance) covers the image",
    ),
    "energy_pointing_game": ScoreInfo(
        "energy",
        "the share of the map's positive mass inside your region; chance: the region's share "
        "of the image",
    ),
    "iou_50": ScoreInfo(
        "IoU at 0.5",
        "overlap (intersection over union) of the map's area above half its maximum with your "
        "region; 0 none, 1 the same area",
    ),
    "iou_mean": ScoreInfo(
        "mean IoU", "the IoU averaged over thresholds of 0.1 to 0.9 of the map's maximum"
    ),
    "dice_50": ScoreInfo(
        "Dice at 0.5",
        "2 x overlap / (area + region) for the map's area above half its maximum; 0 none, 1 same",
    ),
    "dice_mean": ScoreInfo("mean Dice", "Dice averaged over thresholds of 0.1 to 0.9"),
    "auroc": ScoreInfo(
        "AUROC",
        "how well the map ranks your region's pixels above the others; 0.5 is chance, 1 "
        "perfect, below 0.5 the map points away from the region",
    ),
}
# Where an image's scale is unknown, the tolerance is this share of its shorter side.
FALLBACK_TOLERANCE_FRACTION = 0.05


@dataclass(frozen=True)
class Tolerance:
    """The pointing game's tolerance for one image: ``px`` image pixels, ``um`` micrometres
    (None when the image's microns per pixel are unknown), and how it was set."""

    px: float
    um: float | None
    rule: str


def tolerance(
    mpp: float | None, shape: tuple[int, int], tolerance_um: float = DEFAULT_TOLERANCE_UM
) -> Tolerance:
    """The tolerance of the pointing game on an image of ``shape`` = (H, W) at ``mpp``:
    ``tolerance_um`` micrometres, or, with the scale unknown, 5% of the image's shorter side."""
    if not math.isfinite(tolerance_um) or tolerance_um < 0:
        raise ValueError(f"tolerance must be a non-negative number of µm, got {tolerance_um}")
    if mpp is not None and math.isfinite(mpp) and mpp > 0:
        return Tolerance(tolerance_um / mpp, tolerance_um, f"{tolerance_um:g} µm")
    px = FALLBACK_TOLERANCE_FRACTION * min(shape)
    return Tolerance(
        px,
        None,
        f"{px:.1f} px ({FALLBACK_TOLERANCE_FRACTION:.0%} of the image's shorter side: its µm/px "
        "are unknown)",
    )


def configured_tolerance(environ: Mapping[str, str] | None = None) -> float:
    """The pointing game's tolerance in µm the app scores with: ``LRAN_TOLERANCE_UM`` from
    ``environ`` (default ``os.environ``), else :data:`DEFAULT_TOLERANCE_UM`. Raises ValueError
    naming the variable for a value that is not a number of µm in [0, 1000]."""
    text = (os.environ if environ is None else environ).get(ENV_TOLERANCE, "").strip()
    if not text:
        return DEFAULT_TOLERANCE_UM
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 1000):
        raise ValueError(f"{ENV_TOLERANCE} must be a number of µm from 0 to 1000, got {text!r}")
    return value


@dataclass(frozen=True)
class ScoredMap:
    """A map to score: (h, w) float values over the whole image (any resolution), and the
    class it was made for (None for attention and gates)."""

    values: np.ndarray
    cam_class: str | None = None


def score_maps(
    maps: Mapping[str, Mapping[str, ScoredMap]],
    region: np.ndarray,
    mpp: float | None,
    tolerance_um: float = DEFAULT_TOLERANCE_UM,
) -> list[ScoreRecord]:
    """Scores every map of every model against ``region`` (bool (H, W), the image's pixels).

    Takes maps as model -> map name -> :class:`ScoredMap`; each map is resized to the region's
    scoring grid first (:func:`scoring_grid`: (H, W) itself up to :data:`SCORE_SIDE`). Gives
    one :class:`ScoreRecord` per (model, map), in the given order.
    """
    tol = tolerance(mpp, region.shape[:2], tolerance_um)
    grid, scale = scoring_grid(region)
    records = []
    for model, named in maps.items():
        for name, scored in named.items():
            heat = resize_map(scored.values, grid.shape)
            scores = agreement(heat, grid, tol.px * scale)
            record = ScoreRecord.of(model, name, scored.cam_class, scores, tol.um)
            # Stored in the image's pixels, whatever grid it was scored on.
            records.append(replace(record, tolerance_px=tol.px))
    return records


def scoring_grid(region: np.ndarray) -> tuple[np.ndarray, float]:
    """The region (bool (H, W)) on the grid its maps are scored on, and that grid's pixels per
    image pixel: the region itself when its longer side is at most :data:`SCORE_SIDE`, else
    reduced to that side (a grid pixel is in the region when at least half of it is)."""
    height, width = region.shape[:2]
    scale = min(1.0, SCORE_SIDE / max(height, width))
    if scale == 1.0:
        return region.astype(bool, copy=False), 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(
        Image.fromarray(region.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)
    )
    grid = small >= 128
    if not grid.any() and small.any():
        grid = small == small.max()  # a region under half a grid pixel keeps its best cover
    return grid, scale
