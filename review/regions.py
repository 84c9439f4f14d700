"""Every model's maps over a region larger than a patch, what they say about it as a whole, and
the maps that are shown and scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lran_core.region import RegionError, RegionMaps, map_region
from review.modelsets import ModelSet
from review.scoring import ScoredMap

__all__ = ["RegionError", "RegionResult", "RegionSummary", "map_model_set"]


@dataclass(frozen=True)
class RegionSummary:
    """What one model's probability map of a class says about a whole region.

    ``mean`` is the probability averaged over the region's area (every pixel counts once),
    ``maximum`` its highest value, ``share_above_half`` the share of the area where it is above
    0.5. None of these is the model's "prediction" for the region: a region with one carcinoma
    focus has a low mean and a high maximum.
    """

    mean: float
    maximum: float
    share_above_half: float


@dataclass(frozen=True)
class RegionResult:
    """The maps of every model of a set over one region, and how they were made.

    ``maps`` by variant; ``mpp`` of the image; ``overlap``: how much neighbouring classified
    windows overlap (1 - stride / field); ``cam_class`` the index into ``class_names`` of the
    class of every model's CAM and probability map.
    """

    maps: dict[str, RegionMaps]
    mpp: float
    overlap: float
    cam_class: int
    class_names: list[str]

    @property
    def class_name(self) -> str:
        """The name of the class of the CAMs and probability maps."""
        return self.class_names[self.cam_class]

    def summaries(self) -> dict[str, RegionSummary]:
        """Each model's :class:`RegionSummary` of the probability of :attr:`class_name`."""
        out = {}
        for model, m in self.maps.items():
            p = m.probs[self.cam_class]
            out[model] = RegionSummary(
                mean=float(p.mean()),
                maximum=float(p.max()),
                share_above_half=float((p > 0.5).mean()),
            )
        return out

    def layers(self) -> dict[str, dict[str, ScoredMap]]:
        """The maps shown and scored per model, by stored map name: 'probability' (of the CAM's
        class), 'cam', and 'attention' (RAN, LRAN), each (H, W) over the region."""
        layers = {}
        for name, m in self.maps.items():
            layers[name] = {
                "probability": ScoredMap(m.probs[self.cam_class], self.class_name),
                "cam": ScoredMap(m.cam, self.class_name),
            }
            if m.attention is not None:
                layers[name]["attention"] = ScoredMap(m.attention)
        return layers

    def nbytes(self) -> int:
        """Memory held by the maps."""
        return sum(
            m.probs.nbytes + m.cam.nbytes + (0 if m.attention is None else m.attention.nbytes)
            for m in self.maps.values()
        )


def map_model_set(
    model_set: ModelSet,
    rgb: np.ndarray,
    mpp: float | None,
    cam_class: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> RegionResult:
    """Maps a region (H, W, 3) uint8 at ``mpp`` µm/px with every model of the set
    (:func:`lran_core.region.map_region`); ``cam_class`` defaults to the last class (the
    positive one). Raises RegionError (RegionTooLargeError included) for an unusable mpp or a
    region whose maps would not fit in memory."""
    cls = len(model_set.class_names) - 1 if cam_class is None else cam_class
    maps = map_region(model_set.models, rgb, mpp, cam_class=cls, progress=progress)
    overlap = min(m.window_overlap for m in maps.values())
    return RegionResult(maps, float(mpp or 0), overlap, cls, model_set.class_names)
