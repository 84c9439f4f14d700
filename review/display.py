"""How maps are coloured for a reader: honest scales (shared across the models being compared,
percentile-clipped so one hot pixel does not wash a map out), a perceptual colour map, and the
numbers a colour bar shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lran_core.maps import colourise

DEFAULT_CMAP = "viridis"
CLIP_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class Coloured:
    """A map coloured for display: ``rgba`` (h, w, 4) uint8, and the values at the two ends of
    its colour bar (``low`` and ``high``, in the map's own unit)."""

    rgba: np.ndarray
    low: float
    high: float


def _range(values: np.ndarray, clip: tuple[float, float] | None) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if clip is None:
        return float(finite.min()), float(finite.max())
    low, high = np.percentile(finite, clip)
    return float(low), float(high)


def colour_maps(
    maps: Sequence[np.ndarray],
    *,
    shared: bool = True,
    clip: tuple[float, float] | None = CLIP_PERCENTILES,
    fixed: tuple[float, float] | None = None,
    relu: bool = True,
    cmap: str = DEFAULT_CMAP,
) -> list[Coloured]:
    """Colours maps (each (h, w), any size) for side-by-side display.

    ``fixed`` (e.g. (0, 1) for probabilities) sets one range for all; otherwise the range is
    the ``clip`` percentiles (None: min and max) of the maps' values (after ReLU when ``relu``:
    negative evidence is not shown), over all maps when ``shared`` (a weaker map then looks
    weaker) or per map. Values outside the range take its end colours.
    """
    prepared = [np.maximum(m, 0) if relu else np.asarray(m, dtype=np.float32) for m in maps]
    if fixed is not None:
        ranges = [fixed] * len(prepared)
    elif shared and prepared:
        joint = _range(np.concatenate([m.ravel() for m in prepared]), clip)
        ranges = [joint] * len(prepared)
    else:
        ranges = [_range(m, clip) for m in prepared]
    out = []
    for values, (low, high) in zip(prepared, ranges, strict=True):
        span = high - low
        scaled = np.clip((values - low) / span, 0, 1) if span > 0 else np.zeros_like(values)
        rgb = colourise(scaled, cmap)
        alpha = np.full((*rgb.shape[:2], 1), 255, dtype=np.uint8)
        out.append(Coloured(np.concatenate([rgb, alpha], axis=-1), low, high))
    return out
