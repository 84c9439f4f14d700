"""Agreement between what a model looks at and what a reader drew (design.md section 3).

S is a saliency map already up-sampled to the image, shape (H, W), any float; ReLU is applied here
so that negative evidence (e.g. a negative CAM) never counts as pointing at the region. G is the
reader's region, a bool (H, W) mask of the same size.

Conventions where the definitions are silent (ours, design.md §3):
- An all-zero map (after ReLU) points nowhere: pointing game False, energy 0, its thresholded
  region B empty. AUROC of a constant map is 0.5 (every pixel tied).
- A maximum tied over several pixels hits when any of them is within the tolerance (as Quantus).
- An empty region G cannot be pointed at: every score is None (undefined), not 0, and not
  Quantus's pointing-game 1.0; comparisons leave such reviews out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, stats

SCORE_NAMES = (
    "pointing_game",
    "energy_pointing_game",
    "iou_50",
    "iou_mean",
    "dice_50",
    "dice_mean",
    "auroc",
)

# Thresholds (fractions of max S) averaged in iou_mean / dice_mean: 0.1, 0.2, ..., 0.9.
TAUS = tuple(k / 10 for k in range(1, 10))


def _prepare(saliency: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and values; give (ReLU(S) as float64, G as bool), both (H, W)."""
    s = np.asarray(saliency, dtype=np.float64)
    g = np.asarray(region)
    if s.ndim != 2:
        raise ValueError(f"saliency map must be 2-D (H, W), got shape {s.shape}")
    if g.shape != s.shape:
        raise ValueError(
            f"region shape {g.shape} differs from saliency map shape {s.shape}; "
            "up-sample the map to the image first"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("saliency map contains NaN or infinite values")
    return np.maximum(s, 0.0), g.astype(bool)


def _binarise(s: np.ndarray, tau: float) -> np.ndarray:
    """B = [S >= tau * max S]; empty for an all-zero map (which would otherwise select all)."""
    peak = s.max()
    if peak <= 0:
        return np.zeros(s.shape, dtype=bool)
    return s >= tau * peak


def _iou(b: np.ndarray, g: np.ndarray) -> float:
    union = np.count_nonzero(b | g)
    return np.count_nonzero(b & g) / union if union else 0.0


def _dice(b: np.ndarray, g: np.ndarray) -> float:
    total = np.count_nonzero(b) + np.count_nonzero(g)
    return 2 * np.count_nonzero(b & g) / total if total else 0.0


def _pointing(s: np.ndarray, g: np.ndarray, tolerance_px: float) -> bool:
    if not g.any() or s.max() <= 0:
        return False
    # Distance from every pixel to the nearest pixel of G (0 inside G).
    distance = ndimage.distance_transform_edt(~g)
    peaks = s == s.max()
    return bool((distance[peaks] <= tolerance_px).any())


def _energy(s: np.ndarray, g: np.ndarray) -> float:
    total = s.sum()
    return float(s[g].sum() / total) if total > 0 else 0.0


def _auroc(s: np.ndarray, g: np.ndarray) -> float | None:
    n_pos = int(np.count_nonzero(g))
    n_neg = g.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    # Mann-Whitney: with average ranks, U counts each (positive, negative) pair the positive wins,
    # ties as half.
    ranks = stats.rankdata(s.ravel())
    u = ranks[g.ravel()].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def pointing_game(saliency: np.ndarray, region: np.ndarray, tolerance_px: float = 15) -> bool:
    """Pointing game hit (Zhang et al. 2018): takes S and G (H, W); True when the maximum of S
    (any of its pixels, if tied) lies within `tolerance_px` (Euclidean) of some pixel of G."""
    s, g = _prepare(saliency, region)
    return _pointing(s, g, tolerance_px)


def energy_pointing_game(saliency: np.ndarray, region: np.ndarray) -> float:
    """Energy-based pointing game (Wang et al. 2020): takes S and G (H, W); gives
    sum(S * G) / sum(S) in [0, 1]."""
    s, g = _prepare(saliency, region)
    return _energy(s, g)


def iou_at(saliency: np.ndarray, region: np.ndarray, tau: float) -> float:
    """Takes S and G (H, W) and a fraction tau; gives |B & G| / |B | G| with
    B = [S >= tau * max S] (0 when both are empty)."""
    s, g = _prepare(saliency, region)
    return _iou(_binarise(s, tau), g)


def dice_at(saliency: np.ndarray, region: np.ndarray, tau: float) -> float:
    """Takes S and G (H, W) and a fraction tau; gives 2 |B & G| / (|B| + |G|) with
    B = [S >= tau * max S] (0 when both are empty)."""
    s, g = _prepare(saliency, region)
    return _dice(_binarise(s, tau), g)


def auroc(saliency: np.ndarray, region: np.ndarray) -> float | None:
    """Takes S and G (H, W); gives the area under the ROC curve with pixels as samples, G as
    labels and S as scores (Mann-Whitney U / (n+ n-), ties counting half), or None when G is
    empty or covers the whole image."""
    s, g = _prepare(saliency, region)
    return _auroc(s, g)


@dataclass(frozen=True)
class Agreement:
    """The scores of one map against one region (design.md §3); every score None when the
    region is empty. ``tolerance_px`` is the pointing game's tolerance they were made with."""

    pointing_game: bool | None
    energy_pointing_game: float | None
    iou_50: float | None
    iou_mean: float | None
    dice_50: float | None
    dice_mean: float | None
    auroc: float | None
    tolerance_px: float

    def values(self) -> dict[str, bool | float | None]:
        """The scores by name (SCORE_NAMES order), without the tolerance."""
        return {name: value for name, value in asdict(self).items() if name in SCORE_NAMES}


def agreement(saliency: np.ndarray, region: np.ndarray, tolerance_px: float = 15) -> Agreement:
    """Every score of design.md section 3 for one map S and one region G, both (H, W).

    pointing_game (bool), energy_pointing_game, iou_50, iou_mean (mean over tau = 0.1 ... 0.9),
    dice_50, dice_mean, auroc (None when G covers the whole image); all None when G is empty.
    """
    if not np.isfinite(tolerance_px) or tolerance_px < 0:
        raise ValueError(f"tolerance_px must be a non-negative number, got {tolerance_px}")
    s, g = _prepare(saliency, region)
    if not g.any():
        return Agreement(None, None, None, None, None, None, None, float(tolerance_px))
    binarised = {tau: _binarise(s, tau) for tau in TAUS}
    ious = [_iou(b, g) for b in binarised.values()]
    dices = [_dice(b, g) for b in binarised.values()]
    return Agreement(
        pointing_game=_pointing(s, g, tolerance_px),
        energy_pointing_game=_energy(s, g),
        iou_50=_iou(binarised[0.5], g),
        iou_mean=float(np.mean(ious)),
        dice_50=_dice(binarised[0.5], g),
        dice_mean=float(np.mean(dices)),
        auroc=_auroc(s, g),
        tolerance_px=float(tolerance_px),
    )


def region_dice(region_a: np.ndarray, region_b: np.ndarray) -> float:
    """Dice of two readers' regions (bool (H, W) each): 2 |A & B| / (|A| + |B|). Two empty regions
    agree completely (1.0): both readers saw nothing to outline."""
    a, b = np.asarray(region_a, dtype=bool), np.asarray(region_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"regions differ in shape: {a.shape} vs {b.shape}")
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 2 * np.count_nonzero(a & b) / total if total else 1.0
