"""Classification figures as pathology papers report them, from labels and probabilities."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def compute_metrics(
    y_true: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Takes true labels (N,), probabilities (N, K) and class names; gives a JSON-able dict.

    Keys: ``n``, ``accuracy``, ``balanced_accuracy``, ``auc`` (macro one-vs-rest; None if a
    class is absent), ``per_class`` (precision/recall/f1/support/auc), ``confusion`` (K x K,
    rows true), ``roc`` (per class fpr/tpr), ``ece``, and with ``groups`` ``per_group``
    (n, accuracy, positive fraction true and predicted, AUC where both classes occur).
    """
    y = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    if probs.shape != (len(y), k):
        raise ValueError(f"probs has shape {probs.shape}, expected ({len(y)}, {k})")
    if len(y) == 0:
        raise ValueError("no samples to evaluate")
    pred = probs.argmax(1)
    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    per_class, roc = {}, {}
    for c, name in enumerate(class_names):
        yc = (y == c).astype(int)
        auc = _auc(yc, probs[:, c])
        per_class[name] = {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
            "auc": auc,
        }
        if auc is not None:
            fpr, tpr, _ = roc_curve(yc, probs[:, c])
            roc[name] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    aucs = [v["auc"] for v in per_class.values()]
    # Two classes: both one-vs-rest AUCs are the same number; macro over K otherwise.
    defined = [a for a in aucs if a is not None]
    macro_auc = float(np.mean(defined)) if len(defined) == len(aucs) else None
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(set(y)) > 1 else None,
        "auc": macro_auc,
        "ece": expected_calibration_error(y, probs),
        "class_names": list(class_names),
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
        "roc": roc,
    }
    if groups is not None:
        g = np.asarray(groups)
        per_group: dict[str, dict[str, float | int | None]] = {}
        for name in sorted(set(g.tolist())):
            sel = g == name
            entry: dict[str, float | int | None] = {
                "n": int(sel.sum()),
                "accuracy": float((pred[sel] == y[sel]).mean()),
            }
            if k == 2:
                entry["positive_true"] = float((y[sel] == 1).mean())
                entry["positive_pred"] = float((pred[sel] == 1).mean())
                entry["auc"] = _auc((y[sel] == 1).astype(int), probs[sel, 1])
            per_group[name] = entry
        out["per_group"] = per_group
    return out
