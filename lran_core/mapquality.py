"""Is a map about the tissue? Per-model map-quality measures (design.md §3b).

- :func:`border_bias`: share of CAM positive mass and of CAM peaks in the outer ring of a patch,
  next to the ring's share of the area. Zero padding teaches a GAP network to light the frame.
- :func:`centre_ratio`: for PCam positives (tumour in the central 32 x 32 px), CAM positive mass
  in the centre over the centre's area share.
- :func:`randomisation_check`: Spearman rank correlation between the maps of the trained model
  and of a copy whose classifier and last stages are re-initialised (Adebayo et al. 2018).
- :func:`localisation`: energy pointing game and AUROC of a map against a labelled mask.

All take maps as tensors or arrays and give plain floats, ready for JSON.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from torch.nn import functional as F

from .models import LRANClassifier
from .predict import autocast
from .transforms import to_input

RING_FRACTION = 1 / 8


def ring_mask(height: int, width: int, fraction: float = RING_FRACTION) -> np.ndarray:
    """Boolean (H, W): True in the outer ring whose width is ``fraction`` of each side
    (1/8: 43.75% of the area)."""
    if not 0 < fraction < 0.5:
        raise ValueError(f"fraction must be in (0, 0.5), got {fraction}")
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    inner_y = (ys >= fraction) & (ys <= 1 - fraction)
    inner_x = (xs >= fraction) & (xs <= 1 - fraction)
    return ~(inner_y[:, None] & inner_x[None, :])


def _np(maps: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(maps, Tensor):
        return maps.detach().float().cpu().numpy()
    return np.asarray(maps, dtype=np.float32)


def border_bias(maps: Tensor | np.ndarray, fraction: float = RING_FRACTION) -> dict[str, Any]:
    """Takes maps (N, H, W) (raw CAMs of one class each); gives ``n``, ``ring_area`` (the ring's
    share of the area), ``mass_in_ring`` (mean over maps of the share of ReLU(map) inside the
    ring; maps with no positive mass are left out) and ``peak_in_ring`` (share of maps whose
    maximum lies in the ring; a maximum tied over several pixels counts as in the ring only when
    all of them are)."""
    a = _np(maps)
    if a.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got {a.shape}")
    ring = ring_mask(a.shape[1], a.shape[2], fraction)
    pos = np.maximum(a, 0)
    total = pos.sum((1, 2))
    has_mass = total > 0
    mass = (pos * ring).sum((1, 2))[has_mass] / total[has_mass]
    peaks = a == a.max((1, 2), keepdims=True)
    peak_in_ring = (peaks & ~ring).sum((1, 2)) == 0
    return {
        "n": len(a),
        "ring_area": float(ring.mean()),
        "mass_in_ring": float(mass.mean()) if mass.size else None,
        "peak_in_ring": float(peak_in_ring.mean()) if len(a) else None,
    }


def chance_border_bias(
    grid: tuple[int, int],
    size: tuple[int, int],
    n: int = 4000,
    seed: int = 0,
    fraction: float = RING_FRACTION,
) -> dict[str, Any]:
    """What :func:`border_bias` gives for maps blind to position: i.i.d. uniform values on a
    model's (h, w) feature ``grid``, up-sampled bilinearly to ``size`` (H, W) as its maps are.
    The ring's area share understates this level: the grid's edge cells, and the flat bands
    the up-sampling leaves at the border, weigh more than their area (8 x 8 cells at 50 px:
    peaks 0.58 in a ring of 0.42). Gives ``peak_in_ring`` and ``mass_in_ring``."""
    cells = torch.rand(n, 1, *grid, generator=torch.Generator().manual_seed(seed))
    maps = F.interpolate(cells, size=size, mode="bilinear", align_corners=False)[:, 0]
    bias = border_bias(maps, fraction)
    return {"peak_in_ring": bias["peak_in_ring"], "mass_in_ring": bias["mass_in_ring"]}


def cam_grid(model: LRANClassifier) -> tuple[int, int]:
    """The (h, w) feature grid of ``model``'s CAMs at its input size."""
    side = -(-model.meta.input_size // model.features.stride)
    return side, side


def centre_ratio(maps: Tensor | np.ndarray, centre: float = 1 / 3) -> dict[str, Any]:
    """Takes maps (N, H, W); gives ``n``, ``centre_area`` (share of the central square whose
    side is ``centre`` of the patch: PCam's 32 of 96 px, 1/9) and ``ratio``: mean share of
    ReLU(map) inside it over that area share (1 = no preference, 2 = twice as dense)."""
    a = _np(maps)
    h, w = a.shape[1:]
    ys = (np.arange(h) + 0.5) / h
    xs = (np.arange(w) + 0.5) / w
    lo, hi = (1 - centre) / 2, (1 + centre) / 2
    inside = ((ys >= lo) & (ys <= hi))[:, None] & ((xs >= lo) & (xs <= hi))[None, :]
    pos = np.maximum(a, 0)
    total = pos.sum((1, 2))
    keep = total > 0
    share = (pos * inside).sum((1, 2))[keep] / total[keep]
    area = float(inside.mean())
    return {
        "n": int(keep.sum()),
        "centre_area": area,
        "ratio": float(share.mean() / area) if share.size else None,
    }


def randomised_copy(model: LRANClassifier, seed: int = 0) -> LRANClassifier:
    """A copy of ``model`` whose classifier, last base stage and (RAN/LRAN) last attention
    decoder level and logits layer are re-initialised (Adebayo et al.'s cascading check, cut at
    the top stages). The same ``seed`` gives the same weights on any device (they are drawn on
    the CPU); the caller's random state is left as it was."""
    device = next(model.parameters()).device
    rand = copy.deepcopy(model).cpu()
    stages: list[nn.Module] = [rand.fc, *list(rand.features)[rand.features.last_stage :]]
    if rand.attention_branch is not None:
        stages += [rand.attention_branch.decoder[-1], rand.attention_branch.to_logits]
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        for stage in stages:
            for module in stage.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.reset_running_stats()
    return rand.to(device).eval()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a.ravel(), b.ravel()).statistic
    return float(rho) if np.isfinite(rho) else 0.0


@torch.no_grad()
def patch_maps(
    model: LRANClassifier,
    images: Tensor,
    classes: Tensor | None = None,
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict[str, Any]:
    """CAMs (of ``classes``, default the predicted class) and attention maps of uint8 images
    (N, 3, h, h), at the images' own size: ``cam`` (N, h, h), ``attention`` (N, h, h) or None,
    ``pred`` (N,), ``classes`` (N,)."""
    meta = model.meta
    device = next(model.parameters()).device
    cams, atts, preds, used = [], [], [], []
    side = images.shape[-1]
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size].to(device), meta.input_size, meta.mean, meta.std)
        with autocast(device, precision):
            ex = model.explain(x, size=(side, side))
        pred = ex.logits.float().argmax(1)
        cls = pred if classes is None else classes[i : i + batch_size].to(device)
        cams.append(ex.cam.float()[torch.arange(len(cls)), cls].cpu())
        if ex.attention is not None:
            atts.append(ex.attention.float().cpu())
        preds.append(pred.cpu())
        used.append(cls.cpu())
    return {
        "cam": torch.cat(cams),
        "attention": torch.cat(atts) if atts else None,
        "pred": torch.cat(preds),
        "classes": torch.cat(used),
    }


def randomisation_check(
    model: LRANClassifier, images: Tensor, batch_size: int = 64, seed: int = 0
) -> dict[str, Any]:
    """Mean Spearman rank correlation between each image's maps from the trained model and from
    :func:`randomised_copy` (same class: the trained model's prediction). Below 0.5: the map
    depends on what the model learnt. Gives ``n``, ``cam`` and ``attention`` (None for base)."""
    trained = patch_maps(model, images, batch_size=batch_size)
    rand = patch_maps(randomised_copy(model, seed), images, trained["classes"], batch_size)
    out: dict[str, Any] = {"n": len(images)}
    for key in ("cam", "attention"):
        if trained[key] is None:
            out[key] = None
            continue
        a, b = trained[key].numpy(), rand[key].numpy()
        out[key] = float(np.mean([_spearman(x, y) for x, y in zip(a, b)]))
    return out


def localisation(map2d: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    """Energy pointing game (share of ReLU(map) inside ``mask``) and pixel AUROC of a map (H, W)
    against a boolean mask (H, W), with ``mask_share`` (the chance level of the energy score).
    The same definitions as :mod:`annotations.scores` (held equal by a test); None where
    undefined (empty or full mask, map with no positive mass)."""
    s = np.asarray(map2d, dtype=np.float64)
    g = np.asarray(mask, dtype=bool)
    if s.shape != g.shape:
        raise ValueError(f"map {s.shape} and mask {g.shape} differ in shape")
    pos = np.maximum(s, 0)
    total = pos.sum()
    full_or_empty = not 0 < g.sum() < g.size
    return {
        "energy": float((pos * g).sum() / total) if total > 0 and g.any() else None,
        "auroc": None if full_or_empty else float(roc_auc_score(g.ravel(), pos.ravel())),
        "mask_share": float(g.mean()),
    }
