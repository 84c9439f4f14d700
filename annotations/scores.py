"""Agreement between what a model looks at and what a reader drew (design.md section 3).

S is a saliency map already up-sampled to the image, shape (H, W), any float; ReLU is applied here
so that negative evidence (e.g. a negative CAM) never counts as pointing at the region. G is the
reader's region, a bool (H, W) mask of the same size.

Conventions where the definitions are silent (ours):
- An all-zero map (after ReLU) points nowhere: pointing game False, energy 0, its thresholded
  region B empty. AUROC of a constant map is 0.5 (every pixel tied).
- An empty region G cannot be pointed at: pointing game False, energy, IoU and Dice 0, AUROC None.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

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
    peak = np.unravel_index(np.argmax(s), s.shape)
    return bool(distance[peak] <= tolerance_px)


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
    """Pointing game hit (Zhang et al. 2018): takes S and G (H, W); True when the argmax of S
    (first one in row-major order if tied) lies within `tolerance_px` (Euclidean) of some pixel
    of G."""
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


def agreement(
    saliency: np.ndarray, region: np.ndarray, tolerance_px: float = 15
) -> dict[str, bool | float | None]:
    """Every score of design.md section 3 for one map S and one region G, both (H, W).

    Gives a dict with exactly the keys of SCORE_NAMES: pointing_game (bool),
    energy_pointing_game, iou_50, iou_mean (mean over tau = 0.1 ... 0.9), dice_50, dice_mean
    (floats), auroc (float, or None when G is empty or full).
    """
    s, g = _prepare(saliency, region)
    binarised = {tau: _binarise(s, tau) for tau in TAUS}
    ious = [_iou(b, g) for b in binarised.values()]
    dices = [_dice(b, g) for b in binarised.values()]
    return {
        "pointing_game": _pointing(s, g, tolerance_px),
        "energy_pointing_game": _energy(s, g),
        "iou_50": _iou(binarised[0.5], g),
        "iou_mean": float(np.mean(ious)),
        "dice_50": _dice(binarised[0.5], g),
        "dice_mean": float(np.mean(dices)),
        "auroc": _auroc(s, g),
    }


def region_dice(region_a: np.ndarray, region_b: np.ndarray) -> float:
    """Dice of two readers' regions (bool (H, W) each): 2 |A & B| / (|A| + |B|). Two empty regions
    agree completely (1.0): both readers saw nothing to outline."""
    a, b = np.asarray(region_a, dtype=bool), np.asarray(region_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"regions differ in shape: {a.shape} vs {b.shape}")
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 2 * np.count_nonzero(a & b) / total if total else 1.0


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float:
    """Cohen's kappa of two readers' labels over the same items (two equal-length sequences):
    (p_o - p_e) / (1 - p_e). NaN when p_e = 1 (both readers gave one and the same label to every
    item), where kappa is undefined, as in scikit-learn."""
    if len(labels_a) != len(labels_b):
        raise ValueError(f"label lists differ in length: {len(labels_a)} vs {len(labels_b)}")
    n = len(labels_a)
    if n == 0:
        raise ValueError("cohen_kappa needs at least one labelled item")
    observed = sum(a == b for a, b in zip(labels_a, labels_b, strict=True)) / n
    count_a, count_b = Counter(labels_a), Counter(labels_b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if expected == 1:
        return math.nan
    return (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float:
    """Fleiss' kappa for several readers: `ratings` has one row per item, each row the labels
    that all readers (the same number for every item, at least 2) gave it. NaN when chance
    agreement is 1 (one label used throughout), where kappa is undefined."""
    if len(ratings) == 0:
        raise ValueError("fleiss_kappa needs at least one item")
    n_raters = len(ratings[0])
    if n_raters < 2:
        raise ValueError("fleiss_kappa needs at least 2 ratings per item")
    for i, row in enumerate(ratings):
        if len(row) != n_raters:
            raise ValueError(f"item {i} has {len(row)} ratings, item 0 has {n_raters}")
    categories = sorted({label for row in ratings for label in row})
    counts = np.array([[Counter(row)[c] for c in categories] for row in ratings], dtype=float)
    n_items = len(ratings)
    per_item = ((counts**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1))
    p_bar = per_item.mean()
    shares = counts.sum(axis=0) / (n_items * n_raters)
    p_e = float((shares**2).sum())
    if p_e == 1:
        return math.nan
    return float((p_bar - p_e) / (1 - p_e))
