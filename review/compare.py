"""Comparisons over stored reviews: how the models' maps agree with readers' regions, and how
readers agree with each other. Statistics come from kept libraries (scikit-learn, statsmodels,
SciPy), never hand-written."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

from annotations.scores import SCORE_NAMES, region_dice

__all__ = ["SCORE_NAMES", "cohen_kappa", "fleiss_kappa", "region_dice"]


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float:
    """Cohen's kappa of two readers' labels over the same items (scikit-learn). NaN when both
    readers gave one and the same label to every item, where kappa is undefined."""
    if len(labels_a) != len(labels_b):
        raise ValueError(f"label lists differ in length: {len(labels_a)} vs {len(labels_b)}")
    if not labels_a:
        raise ValueError("cohen_kappa needs at least one labelled item")
    if len(set(labels_a) | set(labels_b)) == 1:
        return math.nan
    return float(cohen_kappa_score(list(labels_a), list(labels_b)))


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float:
    """Fleiss' kappa for several readers (statsmodels): one row per item, each row the labels
    all readers (the same number for every item, at least 2) gave it. NaN when one label is
    used throughout."""
    if not ratings:
        raise ValueError("fleiss_kappa needs at least one item")
    widths = {len(row) for row in ratings}
    if len(widths) != 1 or min(widths) < 2:
        raise ValueError("fleiss_kappa needs the same number (at least 2) of ratings per item")
    table, _ = aggregate_raters(np.asarray(ratings, dtype=object))
    if table.shape[1] == 1:
        return math.nan
    return float(_fleiss(table, method="fleiss"))
