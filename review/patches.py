"""Every model's view of one patch: probabilities and maps from one forward pass each."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lran_core.data import preprocess
from lran_core.models import display_name
from review.modelsets import ModelSet
from review.scoring import ScoredMap

# Maps are kept at most this many pixels on a side: a 5000 x 5000 upload would otherwise cost
# about 100 MB per map (and there are a dozen per patch). They are up-sampled to the image's
# pixels for scoring; the models' own maps are far coarser than this anyway.
MAP_SIDE = 512


@dataclass(frozen=True)
class PatchMaps:
    """One model's view of one patch.

    Maps cover the patch exactly, at its own pixel size or, for a patch larger than
    ``MAP_SIDE``, scaled down to fit in it (aspect kept). ``cams`` (K, h, w) holds the raw CAM
    of every class, so that changing the target class needs no new forward pass; ``gates``
    are the LRAN gate maps, coarsest first. ``probs`` (K,) float64.
    """

    variant: str
    class_names: list[str]
    probs: np.ndarray
    cams: np.ndarray
    attention: np.ndarray | None = None
    gates: list[np.ndarray] = field(default_factory=list)

    @property
    def title(self) -> str:
        """Display name, e.g. "R-LRAN"."""
        return display_name(self.variant)

    @property
    def predicted(self) -> int:
        """Index of the most probable class."""
        return int(np.argmax(self.probs))

    def cam_class(self, target: int | None = None) -> int:
        """The class a CAM is shown and scored for: ``target``, or the predicted class."""
        return self.predicted if target is None else target

    def maps(self, target: int | None = None) -> dict[str, ScoredMap]:
        """Maps by stored name: 'cam' of :meth:`cam_class`, then 'attention' (RAN, LRAN) and
        'gate1', 'gate2', ... (LRAN)."""
        cls = self.cam_class(target)
        out = {"cam": ScoredMap(self.cams[cls], self.class_names[cls])}
        if self.attention is not None:
            out["attention"] = ScoredMap(self.attention)
        for i, gate in enumerate(self.gates, start=1):
            out[f"gate{i}"] = ScoredMap(gate)
        return out


@torch.no_grad()
def explain_patch(
    model_set: ModelSet, rgb: np.ndarray, map_side: int = MAP_SIDE
) -> list[PatchMaps]:
    """Every model's probabilities and maps for one patch (H, W, 3) uint8, in set order.

    The patch is square-padded at the bottom/right before it is resized to the input, so maps
    are made for the padded square and cropped back to the patch.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, map_side / max(height, width))
    side = round(max(height, width) * scale)
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))

    def crop(maps: torch.Tensor) -> np.ndarray:
        return maps[0, ..., :rows, :cols].float().numpy().copy()

    outputs = []
    for model in model_set.models.values():
        meta = model.meta
        e = model.explain(preprocess(rgb, meta.input_size, meta.mean, meta.std), size=(side, side))
        outputs.append(
            PatchMaps(
                variant=model.variant,
                class_names=list(meta.class_names),
                probs=e.probs[0].double().numpy(),
                cams=crop(e.cam),
                attention=None if e.attention is None else crop(e.attention),
                gates=[crop(g) for g in e.gates or []],
            )
        )
    return outputs


def patch_predictions(outputs: list[PatchMaps]) -> dict[str, dict[str, float]]:
    """Each model's class probabilities, as a review stores them."""
    return {
        out.variant: dict(zip(out.class_names, map(float, out.probs), strict=True))
        for out in outputs
    }
