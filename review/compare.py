"""Comparisons over stored reviews: how the models' maps agree with readers' regions, and how
readers agree with each other. Statistics come from kept libraries (SciPy, scikit-learn,
statsmodels), never hand-written.

Models (design.md §3). The input is a scores frame as :meth:`annotations.store.Store.scores_frame`
gives it (one row per review, model and map, one column per score in ``SCORE_NAMES``), already
filtered by the caller to one study, reader, kind and read. Every score is "higher is better", so
a positive difference b - a means model b agreed more with the reader than model a.

- :func:`compare_pair` pairs two models' values of one score on one map by review; a review where
  either value is undefined (an empty region, a missing row) is left out and counted.
- :func:`compare_models` gives the three pairs of base / R-RAN / R-LRAN and each model's mean.

Readers (design.md §3, "Between two readers"):

- :func:`cohen_kappa_ci`: Cohen's kappa of two readers' labels over the items both labelled;
- :func:`fleiss_kappa_ci`: Fleiss' kappa of several readers over the items all of them labelled;
- :func:`reader_dice`: Dice of two readers' regions per shared item, and its mean.

Confidence intervals are bootstrap intervals (``scipy.stats.bootstrap``) over the units that were
sampled (reviews, items), seeded so that a page shows the same interval on every rerun. Every
result is a frozen dataclass of plain Python ints, floats, strings and tuples (JSON-able via
``as_dict``), with None where a value is undefined rather than NaN.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

from annotations.scores import SCORE_NAMES, region_dice
from lran_core.models import display_name
from review.scoring import SCORE_INFO

__all__ = [
    "CONFIDENCE_LEVEL",
    "DEFAULT_TIE_BANDS",
    "KAPPA_RESAMPLES",
    "MODEL_TRIO",
    "N_RESAMPLES",
    "SCORE_LABELS",
    "SCORE_NAMES",
    "SEED",
    "BootstrapMethod",
    "DiceEstimate",
    "KappaEstimate",
    "ModelComparison",
    "ModelMean",
    "PairedComparison",
    "cohen_kappa",
    "cohen_kappa_ci",
    "compare_models",
    "compare_pair",
    "fleiss_kappa",
    "fleiss_kappa_ci",
    "model_mean",
    "reader_dice",
    "region_dice",
]

# The three models the study compares, in the order their pairs are reported.
MODEL_TRIO: tuple[str, ...] = ("resnet18", "resnet18-ran", "resnet18-lran")

CONFIDENCE_LEVEL = 0.95
# SciPy's default number of resamples: enough that the interval's ends move by little from seed
# to seed for the vectorised mean.
N_RESAMPLES = 9999
# Kappa cannot be vectorised (one scikit-learn / statsmodels call per resample, about 1 ms), so
# fewer resamples keep a page responsive; 1999 still puts 50 resamples beyond each 95% end.
KAPPA_RESAMPLES = 1999
# Fixed seed: the same data give the same interval on every rerun of a page.
SEED = 0

# "BCa" (SciPy's default) corrects the percentile interval for bias and skew, which matters for
# bounded scores near 0 or 1; "percentile" and "basic" are there for comparison.
BootstrapMethod = Literal["BCa", "percentile", "basic"]

# Differences within the band count as ties in wins / losses / ties: a difference of a few
# hundredths in a region-overlap score is within how precisely a reader draws, so it should not
# count as a win. The pointing game is 0 or 1 per review, so only an exact tie is a tie.
DEFAULT_TIE_BANDS: Mapping[str, float] = MappingProxyType(
    {
        "pointing_game": 0.0,
        "energy_pointing_game": 0.02,
        "iou_50": 0.02,
        "iou_mean": 0.02,
        "dice_50": 0.02,
        "dice_mean": 0.02,
        "auroc": 0.02,
    }
)

# The scores' plain names, from the one vocabulary (review.scoring).
SCORE_LABELS: Mapping[str, str] = MappingProxyType(
    {name: info.label for name, info in SCORE_INFO.items()}
)

_MAP_LABELS: Mapping[str, str] = MappingProxyType({"cam": "CAM", "attention": "attention"})

# Columns of a scores frame that the model comparisons read.
_FRAME_COLUMNS = ("review_id", "model", "map")


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    """Base of the result types: ``as_dict`` gives the fields as a JSON-able dict."""

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (nested results as dicts, tuples as tuples, which JSON writes as
        lists)."""
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison(_Result):
    """Two models' values of one score on one map, paired by review (design.md §3).

    - ``model_a``, ``model_b``: model names; differences are ``b - a`` (positive: b better).
    - ``score``, ``map_name``: the score (one of ``SCORE_NAMES``) and the map (e.g. "cam").
    - ``n``: reviews where both values are defined (the pairs).
    - ``undefined``: reviews of this map left out because either value was undefined or missing.
    - ``mean_difference``, ``median_difference``: of ``b - a`` over the pairs; None when n = 0.
    - ``ci``: bootstrap confidence interval (low, high) of the mean difference, resampling pairs;
      None when n < 2 or every difference is the same (the bootstrap distribution is one point).
    - ``p_value``: two-sided Wilcoxon signed-rank test of the differences (SciPy defaults: zero
      differences dropped); None when n < 2 or every difference is 0.
    - ``wins``, ``losses``, ``ties``: pairs where b is better than a by more than ``tie_band``,
      worse by more than it, or within it (|b - a| <= ``tie_band``).
    - ``confidence_level``: of ``ci``.
    """

    model_a: str
    model_b: str
    score: str
    map_name: str
    n: int
    undefined: int
    mean_difference: float | None
    median_difference: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    wins: int
    losses: int
    ties: int
    tie_band: float
    confidence_level: float

    def summary(self) -> str:
        """One plain-language line, e.g. "R-LRAN vs R-RAN on CAM energy: +0.031 (95% CI -0.01
        to +0.07), 5 better, 2 worse, 3 within ±0.02; Wilcoxon p = 0.21; n = 10"."""
        head = (
            f"{display_name(self.model_b)} vs {display_name(self.model_a)} on "
            f"{_map_label(self.map_name)} {SCORE_LABELS[self.score]}"
        )
        left_out = f" ({self.undefined} left out: score undefined)" if self.undefined else ""
        if self.mean_difference is None:
            return f"{head}: no review with both scores defined{left_out}"
        # A band of 0 (pointing game) makes "within ±0" read oddly: those are exact ties.
        tied = (
            f"{self.ties} tied" if self.tie_band == 0 else f"{self.ties} within ±{self.tie_band:g}"
        )
        p = "n/a" if self.p_value is None else _format_p(self.p_value)
        return (
            f"{head}: {self.mean_difference:+.3f} ({_format_ci(self.ci, self.confidence_level)}), "
            f"{self.wins} better, {self.losses} worse, {tied}; Wilcoxon p {p}; "
            f"n = {self.n}{left_out}"
        )


@dataclass(frozen=True)
class ModelMean(_Result):
    """One model's mean of one score on one map, over the reviews where it is defined.

    - ``n``: reviews with the score defined; ``undefined``: rows of this model and map without it.
    - ``mean``: None when n = 0; for the pointing game it is the hit rate.
    - ``ci``: bootstrap confidence interval (low, high) of the mean, resampling reviews; None when
      n < 2 or every value is the same.
    """

    model: str
    score: str
    map_name: str
    n: int
    undefined: int
    mean: float | None
    ci: tuple[float, float] | None
    confidence_level: float

    def summary(self) -> str:
        """One line, e.g. "R-LRAN CAM energy: 0.412 (95% CI 0.33 to 0.50); n = 10"."""
        head = f"{display_name(self.model)} {_map_label(self.map_name)} {SCORE_LABELS[self.score]}"
        if self.mean is None:
            return f"{head}: no review with the score defined"
        ci = _format_ci(self.ci, self.confidence_level, signed=False)
        return f"{head}: {self.mean:.3f} ({ci}); n = {self.n}"


@dataclass(frozen=True)
class ModelComparison(_Result):
    """The three models on one score and map: each model's mean (``means``, in ``MODEL_TRIO``
    order) and the paired comparisons (``pairs``: base vs R-RAN, base vs R-LRAN, R-RAN vs
    R-LRAN), models absent from the frame skipped. The means may be over different reviews; only
    the pairs compare models on the same reviews."""

    score: str
    map_name: str
    means: tuple[ModelMean, ...]
    pairs: tuple[PairedComparison, ...]


@dataclass(frozen=True)
class KappaEstimate(_Result):
    """Agreement of readers' labels beyond chance.

    - ``statistic``: "Cohen's kappa" (two readers) or "Fleiss' kappa" (several).
    - ``kappa``: None when undefined: fewer than 2 items, or one label used throughout.
    - ``ci``: bootstrap confidence interval (low, high) over items; None when kappa is None,
      when SciPy's interval is degenerate (with BCa: every resample gives the same kappa, e.g.
      full agreement), or when some resample (or BCa jackknife sample) has one label throughout:
      kappa is undefined there, so the bootstrap distribution is too. That happens with few items
      or a rare label, where the interval would be very wide anyway; no interval is given rather
      than one over the defined resamples only, which would leave out full-agreement resamples.
    - ``n``: items used; ``raters``: readers per item.
    - ``undefined_resamples``: bootstrap resamples with one label throughout (0 when there was
      no bootstrap); any makes ``ci`` None, and says why.
    """

    statistic: str
    kappa: float | None
    ci: tuple[float, float] | None
    n: int
    raters: int
    undefined_resamples: int
    confidence_level: float

    def summary(self) -> str:
        """One line, e.g. "Cohen's kappa 0.55 (95% CI 0.12 to 0.91); n = 9 items"."""
        if self.kappa is None:
            return f"{self.statistic} undefined (n = {self.n} items; it needs 2 items and 2 labels)"
        ci = _format_ci(self.ci, self.confidence_level, signed=False)
        if self.ci is None and self.undefined_resamples:
            ci = f"no CI: {self.undefined_resamples} resamples had one label throughout"
        return f"{self.statistic} {self.kappa:.2f} ({ci}); n = {self.n} items"


@dataclass(frozen=True)
class DiceEstimate(_Result):
    """Dice of two readers' regions on the items both drew on.

    - ``per_item``: (item, Dice) for each shared item, items sorted.
    - ``mean``: mean Dice, None when n = 0.
    - ``ci``: bootstrap confidence interval (low, high) of the mean over items; None when n < 2 or
      every item has the same Dice.
    """

    mean: float | None
    ci: tuple[float, float] | None
    n: int
    per_item: tuple[tuple[str, float], ...]
    confidence_level: float

    def summary(self) -> str:
        """One line, e.g. "Dice of the regions 0.62 (95% CI 0.48 to 0.74); n = 12 items"."""
        if self.mean is None:
            return "Dice of the regions: no item drawn on by both readers"
        ci = _format_ci(self.ci, self.confidence_level, signed=False)
        return f"Dice of the regions {self.mean:.2f} ({ci}); n = {self.n} items"


# --- Models ----------------------------------------------------------------------------------


def compare_pair(
    frame: pd.DataFrame,
    score: str,
    map_name: str,
    model_a: str,
    model_b: str,
    *,
    tie_band: float | None = None,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> PairedComparison:
    """Compares two models on one score and map, paired by review.

    Takes a scores frame (columns review_id, model, map and ``score``; one row per review, model
    and map; filtered by the caller to one study, reader, kind and read), the score name, the map
    name and the two model names. Gives a :class:`PairedComparison` of ``b - a`` over the reviews
    where both values are defined; a review with a row on this map for either model, where the
    other model has no row or either value is undefined (NaN / None / <NA>), is left out and
    counted in ``undefined``. ``tie_band`` defaults to
    ``DEFAULT_TIE_BANDS[score]``. The bootstrap resamples pairs (``paired=True``) with a generator
    seeded by ``seed``. Raises ValueError for an unknown score, a missing column, the same model
    twice, a negative band or two rows for one review, model and map.
    """
    if model_a == model_b:
        raise ValueError(f"compare two different models, got {model_a!r} twice")
    band = _tie_band(score, tie_band)
    wide = _wide(frame, score, map_name, (model_a, model_b))
    both = wide.dropna()
    a = both[model_a].to_numpy(dtype=float)
    b = both[model_b].to_numpy(dtype=float)
    diff = b - a
    undefined = len(wide) - len(both)

    # Float error in differences of decimal scores (0.05 - 0.03 = 0.020000000000000004) must not
    # turn a difference equal to the band into a win, so "at most the band" allows for it.
    within = (np.abs(diff) <= band) | np.isclose(np.abs(diff), band, rtol=1e-9, atol=1e-12)
    ci: tuple[float, float] | None = None
    if diff.size >= 2 and not _all_equal(diff):
        ci = _bootstrap_ci(
            (a, b),
            _mean_difference,
            paired=True,
            vectorized=True,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            method=method,
            seed=seed,
        )
    return PairedComparison(
        model_a=model_a,
        model_b=model_b,
        score=score,
        map_name=map_name,
        n=int(diff.size),
        undefined=int(undefined),
        mean_difference=float(np.mean(diff)) if diff.size else None,
        median_difference=float(np.median(diff)) if diff.size else None,
        ci=ci,
        p_value=_wilcoxon_p(diff),
        wins=int(np.count_nonzero((diff > 0) & ~within)),
        losses=int(np.count_nonzero((diff < 0) & ~within)),
        ties=int(np.count_nonzero(within)),
        tie_band=band,
        confidence_level=float(confidence_level),
    )


def model_mean(
    frame: pd.DataFrame,
    score: str,
    map_name: str,
    model: str,
    *,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> ModelMean:
    """One model's mean of a score on a map over the reviews where it is defined, with a
    bootstrap confidence interval resampling reviews. Takes the frame as :func:`compare_pair`;
    gives a :class:`ModelMean` (n = 0 and mean None for a model with no row)."""
    values = _wide(frame, score, map_name, (model,))[model].to_numpy(dtype=float)
    defined = values[~np.isnan(values)]
    ci = _mean_ci(defined, confidence_level, n_resamples, method, seed)
    return ModelMean(
        model=model,
        score=score,
        map_name=map_name,
        n=int(defined.size),
        undefined=int(values.size - defined.size),
        mean=float(np.mean(defined)) if defined.size else None,
        ci=ci,
        confidence_level=float(confidence_level),
    )


def compare_models(
    frame: pd.DataFrame,
    score: str,
    map_name: str,
    *,
    models: Sequence[str] = MODEL_TRIO,
    tie_band: float | None = None,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> ModelComparison:
    """All models on one score and map. Takes the frame as :func:`compare_pair` and the models in
    report order (default base, R-RAN, R-LRAN). Models with no row for ``map_name`` are skipped.
    Gives a :class:`ModelComparison`: each present model's mean with a bootstrap interval, and
    every pair (a, b) with a before b in ``models`` (base vs R-RAN, base vs R-LRAN, R-RAN vs
    R-LRAN). Each bootstrap starts from the same ``seed``, so a pair's interval does not depend
    on which other models are present."""
    _check_frame(frame, score)
    on_map = frame.loc[frame["map"] == map_name, "model"]
    present = [m for m in dict.fromkeys(models) if (on_map == m).any()]
    options: dict[str, Any] = {
        "confidence_level": confidence_level,
        "n_resamples": n_resamples,
        "method": method,
        "seed": seed,
    }
    means = tuple(model_mean(frame, score, map_name, m, **options) for m in present)
    pairs = tuple(
        compare_pair(frame, score, map_name, a, b, tie_band=tie_band, **options)
        for a, b in itertools.combinations(present, 2)
    )
    return ModelComparison(score=score, map_name=map_name, means=means, pairs=pairs)


# --- Readers ---------------------------------------------------------------------------------


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


def cohen_kappa_ci(
    labels_a: pd.Series | Mapping[Hashable, object],
    labels_b: pd.Series | Mapping[Hashable, object],
    *,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = KAPPA_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> KappaEstimate:
    """Cohen's kappa (``sklearn.metrics.cohen_kappa_score``) of two readers' labels, with a
    bootstrap interval over items.

    kappa = (p_o - p_e) / (1 - p_e): p_o the share of items the readers label alike, p_e the
    share expected by chance from each reader's own label frequencies.

    Takes each reader's labels keyed by item (a Series indexed by item, or a mapping); items
    that either reader left unlabelled (missing or NaN / None) are left out. The items used are
    sorted, so the seeded bootstrap is reproducible. Gives a :class:`KappaEstimate` with
    ``raters`` = 2.
    """
    a, b = _labels(labels_a), _labels(labels_b)
    shared = a.index.intersection(b.index).sort_values()
    x = a.loc[shared].to_numpy(dtype=object)
    y = b.loc[shared].to_numpy(dtype=object)
    return _kappa_estimate(
        "Cohen's kappa",
        (x, y),
        _cohen_or_nan,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
    )


def fleiss_kappa_ci(
    ratings: pd.DataFrame | np.ndarray | Sequence[Sequence[object]],
    *,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = KAPPA_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> KappaEstimate:
    """Fleiss' kappa (statsmodels ``fleiss_kappa`` on ``aggregate_raters``) of several readers'
    labels, with a bootstrap interval over items.

    kappa = (P_bar - P_e) / (1 - P_e): P_bar the mean over items of the share of reader pairs
    that agree on the item, P_e the same expected by chance from the pooled label frequencies.
    With two readers it is Scott's pi, not Cohen's kappa.

    Takes a table with one row per item and one column per reader (a DataFrame, for example a
    pivot of labels, or a 2-D array / nested sequence), NaN / None where a reader did not label
    the item; only items all readers labelled are used, in the table's row order. Gives a
    :class:`KappaEstimate`. Raises ValueError for fewer than two readers.
    """
    table = pd.DataFrame(ratings)
    if table.shape[1] < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 readers, got {table.shape[1]}")
    complete = table.dropna()
    columns = tuple(complete[c].to_numpy(dtype=object) for c in complete.columns)
    return _kappa_estimate(
        "Fleiss' kappa",
        columns,
        _fleiss_or_nan,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
    )


def reader_dice(
    masks_a: Mapping[str, np.ndarray],
    masks_b: Mapping[str, np.ndarray],
    *,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: BootstrapMethod = "BCa",
    seed: int = SEED,
) -> DiceEstimate:
    """Dice of two readers' regions, per item both drew on, and its mean with a bootstrap
    interval over items.

    Dice = 2 |A & B| / (|A| + |B|) (``annotations.scores.region_dice``; two empty regions agree
    completely: 1). Takes each reader's bool (H, W) masks keyed by item; gives a
    :class:`DiceEstimate` over the items in both, sorted. Raises ValueError when the two masks
    of an item differ in shape.
    """
    shared = sorted(set(masks_a) & set(masks_b))
    per_item = tuple(
        (str(item), float(region_dice(masks_a[item], masks_b[item]))) for item in shared
    )
    values = np.array([d for _, d in per_item], dtype=float)
    ci = _mean_ci(values, confidence_level, n_resamples, method, seed)
    return DiceEstimate(
        mean=float(np.mean(values)) if values.size else None,
        ci=ci,
        n=int(values.size),
        per_item=per_item,
        confidence_level=float(confidence_level),
    )


# --- Helpers ---------------------------------------------------------------------------------


def _check_frame(frame: pd.DataFrame, score: str) -> None:
    """ValueError for an unknown score or a frame without the columns the comparisons read."""
    if score not in SCORE_NAMES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORE_NAMES)}")
    missing = [c for c in (*_FRAME_COLUMNS, score) if c not in frame.columns]
    if missing:
        raise ValueError(f"scores frame lacks column(s) {', '.join(missing)}")


def _tie_band(score: str, tie_band: float | None) -> float:
    """The band to use: the given one, or the score's default; ValueError if negative."""
    if score not in SCORE_NAMES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORE_NAMES)}")
    band = DEFAULT_TIE_BANDS[score] if tie_band is None else float(tie_band)
    if not band >= 0:
        raise ValueError(f"tie band must be >= 0, got {tie_band}")
    return band


def _as_float(values: pd.Series) -> np.ndarray:
    """Score values as float64 with NaN for undefined: the frame's pointing game is pandas
    "boolean" with <NA>, other frames may hold None or bools in object columns."""
    return np.array([math.nan if pd.isna(v) else float(v) for v in values], dtype=float)


def _wide(frame: pd.DataFrame, score: str, map_name: str, models: Sequence[str]) -> pd.DataFrame:
    """One row per review of ``map_name`` that has a row for any of ``models`` (sorted by
    review_id), one float column per model, NaN where the score is undefined or the row is
    missing."""
    _check_frame(frame, score)
    rows = frame.loc[(frame["map"] == map_name) & frame["model"].isin(list(models))]
    repeated = rows.duplicated(["review_id", "model"])
    if repeated.any():
        first = rows.loc[repeated].iloc[0]
        raise ValueError(
            f"two rows for review {first['review_id']}, model {first['model']!r}, map "
            f"{map_name!r}: filter the frame to one study, reader, kind and read first"
        )
    long = pd.DataFrame(
        {
            "review_id": rows["review_id"].to_numpy(),
            "model": rows["model"].to_numpy(),
            "value": _as_float(rows[score]),
        }
    )
    wide = long.pivot(index="review_id", columns="model", values="value")
    return wide.reindex(columns=list(models)).sort_index()


def _mean_ci(
    values: np.ndarray,
    confidence_level: float,
    n_resamples: int,
    method: BootstrapMethod,
    seed: int,
) -> tuple[float, float] | None:
    """The bootstrap interval of the mean of ``values`` (1-D), None where it is undefined
    (fewer than two values, or all equal)."""
    if values.size < 2 or _all_equal(values):
        return None
    return _bootstrap_ci(
        (values,),
        np.mean,
        paired=False,
        vectorized=True,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        method=method,
        seed=seed,
    )


def _all_equal(values: np.ndarray, to: float | None = None) -> bool:
    """True when every value equals ``to`` (default: the first value) up to float error: the
    differences 0.2 - 0.1 and 0.3 - 0.2 differ in the last bit, and a bootstrap of them would
    give an interval of width 1e-16 instead of none."""
    target = values[0] if to is None else to
    return bool(np.allclose(values, target, rtol=1e-9, atol=1e-12))


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of b - a along ``axis``: the statistic bootstrapped over pairs."""
    return np.mean(b - a, axis=axis)


def _wilcoxon_p(diff: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the differences (``scipy.stats.wilcoxon``,
    default options); None when there are fewer than 2 or all are 0 (up to float error), where
    there is nothing to test (SciPy would give 1.0, or NaN with a warning)."""
    if diff.size < 2 or _all_equal(diff, 0.0):
        return None
    p = float(stats.wilcoxon(diff).pvalue)
    return p if math.isfinite(p) else None


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., Any],
    *,
    paired: bool,
    vectorized: bool,
    confidence_level: float,
    n_resamples: int,
    method: BootstrapMethod,
    seed: int,
) -> Any:
    """``scipy.stats.bootstrap`` of ``statistic`` over ``data`` with a generator seeded by
    ``seed``; gives SciPy's BootstrapResult."""
    with warnings.catch_warnings():
        # A degenerate distribution gives NaN ends, reported by the callers as None: the
        # warnings would say nothing more (BCa's acceleration divides by zero when every
        # jackknife value is the same: a RuntimeWarning).
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            vectorized=vectorized,
            paired=paired,
            confidence_level=confidence_level,
            method=method,
            rng=np.random.default_rng(seed),
        )


def _interval(result: Any) -> tuple[float, float] | None:
    """The (low, high) of a BootstrapResult, or None when SciPy could not give finite ends (a
    degenerate bootstrap distribution, or a statistic undefined on some resample)."""
    low = float(result.confidence_interval.low)
    high = float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def _bootstrap_ci(
    data: tuple[np.ndarray, ...], statistic: Callable[..., Any], **options: Any
) -> tuple[float, float] | None:
    """:func:`_bootstrap` reduced to its interval (see :func:`_interval`)."""
    return _interval(_bootstrap(data, statistic, **options))


def _labels(labels: pd.Series | Mapping[Hashable, object]) -> pd.Series:
    """One reader's labels as a Series by item, unlabelled items dropped; ValueError when an
    item appears twice."""
    series = labels if isinstance(labels, pd.Series) else pd.Series(dict(labels), dtype=object)
    if series.index.has_duplicates:
        raise ValueError("an item has two labels from one reader")
    return series.dropna()


def _single_label(*columns: np.ndarray) -> bool:
    """True when the columns hold one label between them (kappa is 0 / 0 there)."""
    return len(set(np.concatenate(columns).tolist())) <= 1


def _cohen_or_nan(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa by scikit-learn, NaN when undefined (checked first: scikit-learn would warn
    on every such resample)."""
    if a.size == 0 or _single_label(a, b):
        return math.nan
    return float(cohen_kappa_score(a, b))


def _fleiss_or_nan(*columns: np.ndarray) -> float:
    """Fleiss' kappa by statsmodels over readers' label columns, NaN when undefined."""
    if columns[0].size == 0 or _single_label(*columns):
        return math.nan
    table, _ = aggregate_raters(np.column_stack(columns))
    return float(_fleiss(table, method="fleiss"))


def _kappa_estimate(
    name: str,
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    *,
    confidence_level: float,
    n_resamples: int,
    method: BootstrapMethod,
    seed: int,
) -> KappaEstimate:
    """Kappa of the readers' label columns (aligned by item) and its bootstrap interval,
    resampling items (``paired=True`` keeps each item's labels together)."""
    n = int(columns[0].size)
    kappa = statistic(*columns) if n >= 2 else math.nan
    ci: tuple[float, float] | None = None
    undefined_resamples = 0
    if math.isfinite(kappa):
        result = _bootstrap(
            columns,
            statistic,
            paired=True,
            vectorized=False,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            method=method,
            seed=seed,
        )
        ci = _interval(result)
        undefined_resamples = int(np.count_nonzero(np.isnan(result.bootstrap_distribution)))
    return KappaEstimate(
        statistic=name,
        kappa=float(kappa) if math.isfinite(kappa) else None,
        ci=ci,
        n=n,
        raters=len(columns),
        undefined_resamples=undefined_resamples,
        confidence_level=float(confidence_level),
    )


def _map_label(map_name: str) -> str:
    """How a map is named in sentences: "cam" -> "CAM", "gate1" -> "gate 1"."""
    if map_name in _MAP_LABELS:
        return _MAP_LABELS[map_name]
    if map_name.startswith("gate") and map_name[4:].isdigit():
        return f"gate {map_name[4:]}"
    return map_name


def _format_ci(ci: tuple[float, float] | None, level: float, *, signed: bool = True) -> str:
    """ "95% CI -0.01 to +0.07", or "no CI" when there is none."""
    if ci is None:
        return "no CI"
    spec = "+.2f" if signed else ".2f"
    return f"{level:.0%} CI {ci[0]:{spec}} to {ci[1]:{spec}}"


def _format_p(p: float) -> str:
    """ "= 0.21", "= 0.0012", "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"
