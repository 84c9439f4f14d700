"""review.compare: paired model comparisons and reader agreement, checked by hand on tiny inputs
and against SciPy / scikit-learn / statsmodels called directly on the same inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from review.compare import (
    DEFAULT_TIE_BANDS,
    MODEL_TRIO,
    SCORE_NAMES,
    cohen_kappa,
    cohen_kappa_ci,
    compare_models,
    compare_pair,
    fleiss_kappa,
    fleiss_kappa_ci,
    model_mean,
    reader_dice,
    region_dice,
)

BASE, RAN, LRAN = MODEL_TRIO
ENERGY = "energy_pointing_game"
# Few resamples keep the tests quick; the library calls in the tests use the same number.
FEW = 499


def scores_frame(values: dict[str, list[float | None]], score: str = ENERGY) -> pd.DataFrame:
    """A scores frame like Store.scores_frame: review i (1-based) has, for each model, the i-th
    value (a row with NaN for None) on map "cam"; the pointing game column is pandas "boolean"."""
    rows = []
    for model, column in values.items():
        for i, value in enumerate(column, start=1):
            rows.append({"review_id": i, "model": model, "map": "cam", score: value})
    frame = pd.DataFrame(rows)
    if score == "pointing_game":
        frame[score] = frame[score].astype("boolean")
    else:
        frame[score] = frame[score].astype(float)
    return frame


def random_pairs(n: int = 15, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 0.7, n)
    b = np.clip(a + rng.normal(0.05, 0.1, n), 0, 1)
    return a, b


def is_plain(value: object) -> bool:
    """True when value is built of Python int / float / str / bool / None / tuple / dict only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, tuple):
        return all(is_plain(v) for v in value)
    return value is None or type(value) in (int, float, str, bool)


# --- Pairing and the tie band, by hand ---------------------------------------------------------


def test_pairing_leaves_out_undefined_reviews_and_counts_them():
    frame = scores_frame({RAN: [0.2, 0.4, 0.5], LRAN: [0.5, None, 0.9]})
    # Review 4: only R-LRAN has a row (R-RAN's is missing altogether); review 5 is another map.
    extra = pd.DataFrame(
        [
            {"review_id": 4, "model": LRAN, "map": "cam", ENERGY: 0.7},
            {"review_id": 5, "model": RAN, "map": "attention", ENERGY: 0.1},
            {"review_id": 5, "model": LRAN, "map": "attention", ENERGY: 0.9},
        ]
    )
    result = compare_pair(pd.concat([frame, extra]), ENERGY, "cam", RAN, LRAN)
    # Pairs: review 1 (0.5 - 0.2 = 0.3) and review 3 (0.9 - 0.5 = 0.4); reviews 2 and 4 left out.
    assert result.n == 2
    assert result.undefined == 2
    assert result.mean_difference == pytest.approx(0.35)
    assert result.median_difference == pytest.approx(0.35)
    assert (result.wins, result.losses, result.ties) == (2, 0, 0)


def test_tie_band_by_hand():
    a = [0.0055, 0.50, 0.03, 0.30, 0.40]
    b = [0.0124, 0.60, 0.05, 0.10, 0.39]
    frame = scores_frame({RAN: a, LRAN: b})
    # Band 0.01: +0.0069 tie, +0.10 win, +0.02 win, -0.20 loss, -0.01 tie (at the band).
    result = compare_pair(frame, ENERGY, "cam", RAN, LRAN, tie_band=0.01)
    assert (result.wins, result.losses, result.ties) == (2, 1, 2)
    assert result.tie_band == 0.01
    # Default band 0.02: 0.05 - 0.03 is 0.020000000000000004 in floats and still a tie.
    default = compare_pair(frame, ENERGY, "cam", RAN, LRAN)
    assert default.tie_band == DEFAULT_TIE_BANDS[ENERGY] == 0.02
    assert (default.wins, default.losses, default.ties) == (1, 1, 3)
    # Band 0: only the exact ties (none here).
    exact = compare_pair(frame, ENERGY, "cam", RAN, LRAN, tie_band=0)
    assert (exact.wins, exact.losses, exact.ties) == (3, 2, 0)
    with pytest.raises(ValueError, match="tie band"):
        compare_pair(frame, ENERGY, "cam", RAN, LRAN, tie_band=-0.1)


def test_pointing_game_two_misses_are_a_tie():
    # Reviews: hit/hit, miss/miss, miss/hit, hit/miss, miss/hit, and <NA> for the base on one.
    frame = scores_frame(
        {
            BASE: [True, False, False, True, False, None],
            LRAN: [True, False, True, False, True, True],
        },
        score="pointing_game",
    )
    assert str(frame["pointing_game"].dtype) == "boolean"
    result = compare_pair(frame, "pointing_game", "cam", BASE, LRAN)
    assert DEFAULT_TIE_BANDS["pointing_game"] == 0
    assert (result.wins, result.losses, result.ties) == (2, 1, 2)
    assert (result.n, result.undefined) == (5, 1)
    # Hit rates 3/5 (R-LRAN) and 2/5 (base): mean difference +0.2.
    assert result.mean_difference == pytest.approx(0.2)
    assert "2 tied" in result.summary()


def test_default_tie_bands_cover_every_score():
    assert set(DEFAULT_TIE_BANDS) == set(SCORE_NAMES)
    assert all(DEFAULT_TIE_BANDS[s] == 0.02 for s in SCORE_NAMES if s != "pointing_game")


# --- Against SciPy -----------------------------------------------------------------------------


def test_paired_comparison_matches_scipy():
    a, b = random_pairs()
    frame = scores_frame({BASE: list(a), RAN: list(b)})
    result = compare_pair(frame, ENERGY, "cam", BASE, RAN, n_resamples=FEW, seed=3)

    d = b - a
    assert result.mean_difference == pytest.approx(float(np.mean(d)))
    assert result.median_difference == pytest.approx(float(np.median(d)))
    assert result.p_value == pytest.approx(float(stats.wilcoxon(d).pvalue))

    expected = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        paired=True,
        n_resamples=FEW,
        method="BCa",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))
    assert result.ci[0] < result.mean_difference < result.ci[1]
    # The same seed gives the same interval; another seed another one.
    assert compare_pair(frame, ENERGY, "cam", BASE, RAN, n_resamples=FEW, seed=3).ci == result.ci
    assert compare_pair(frame, ENERGY, "cam", BASE, RAN, n_resamples=FEW, seed=4).ci != result.ci


def test_paired_comparison_percentile_method_and_level_match_scipy():
    a, b = random_pairs(12, seed=11)
    frame = scores_frame({RAN: list(a), LRAN: list(b)})
    result = compare_pair(
        frame,
        ENERGY,
        "cam",
        RAN,
        LRAN,
        n_resamples=FEW,
        method="percentile",
        confidence_level=0.9,
        seed=0,
    )
    expected = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        paired=True,
        n_resamples=FEW,
        method="percentile",
        confidence_level=0.9,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))
    assert result.confidence_level == 0.9
    assert "90% CI" in result.summary()


def test_model_mean_matches_scipy_and_leaves_out_undefined():
    a, _ = random_pairs(10, seed=5)
    values: list[float | None] = [*a, None]
    result = model_mean(scores_frame({LRAN: values}), ENERGY, "cam", LRAN, n_resamples=FEW, seed=1)
    assert (result.n, result.undefined) == (10, 1)
    assert result.mean == pytest.approx(float(np.mean(a)))
    expected = stats.bootstrap(
        (a,), np.mean, n_resamples=FEW, rng=np.random.default_rng(1)
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))


# --- Edge cases --------------------------------------------------------------------------------


def test_no_pairs():
    frame = scores_frame({RAN: [0.1, 0.2], LRAN: [None, None]})
    result = compare_pair(frame, ENERGY, "cam", RAN, LRAN)
    assert (result.n, result.undefined) == (0, 2)
    assert result.mean_difference is None and result.median_difference is None
    assert result.ci is None and result.p_value is None
    assert (result.wins, result.losses, result.ties) == (0, 0, 0)
    assert result.summary() == (
        "R-LRAN vs R-RAN on CAM energy: no review with both scores defined "
        "(2 left out: score undefined)"
    )


def test_one_pair():
    frame = scores_frame({RAN: [0.2], LRAN: [0.3]})
    result = compare_pair(frame, ENERGY, "cam", RAN, LRAN)
    assert result.n == 1
    assert result.mean_difference == pytest.approx(0.1)
    assert result.ci is None and result.p_value is None
    assert result.summary() == (
        "R-LRAN vs R-RAN on CAM energy: +0.100 (no CI), 1 better, 0 worse, 0 within ±0.02; "
        "Wilcoxon p n/a; n = 1"
    )


def test_all_equal_differences():
    # Every difference +0.1: no interval (the bootstrap distribution is one point), but the
    # signed-rank test is defined: 5 positive ranks, exact two-sided p = 2 / 2^5.
    frame = scores_frame({RAN: [0.1, 0.2, 0.3, 0.4, 0.5], LRAN: [0.2, 0.3, 0.4, 0.5, 0.6]})
    result = compare_pair(frame, ENERGY, "cam", RAN, LRAN)
    assert result.mean_difference == pytest.approx(0.1)
    assert result.ci is None
    assert result.p_value == pytest.approx(0.0625)
    # All differences zero: no interval and no test; every pair a tie.
    same = compare_pair(
        scores_frame({RAN: [0.1, 0.2, 0.3], LRAN: [0.1, 0.2, 0.3]}), ENERGY, "cam", RAN, LRAN
    )
    assert same.ci is None and same.p_value is None
    assert (same.wins, same.losses, same.ties) == (0, 0, 3)


def test_model_missing_from_the_frame():
    a, b = random_pairs(8)
    frame = scores_frame({BASE: list(a), LRAN: list(b)})
    # compare_pair still answers, with no pairs and every review left out.
    missing = compare_pair(frame, ENERGY, "cam", RAN, LRAN)
    assert (missing.n, missing.undefined) == (0, 8)
    # compare_models skips R-RAN: one mean per present model, one pair.
    result = compare_models(frame, ENERGY, "cam", n_resamples=FEW)
    assert [m.model for m in result.means] == [BASE, LRAN]
    assert [(p.model_a, p.model_b) for p in result.pairs] == [(BASE, LRAN)]
    assert result.pairs[0] == compare_pair(frame, ENERGY, "cam", BASE, LRAN, n_resamples=FEW)
    # A map with no rows: nothing to compare.
    empty = compare_models(frame, ENERGY, "attention")
    assert empty.means == () and empty.pairs == ()


def test_compare_models_gives_the_three_pairs_in_order():
    rng = np.random.default_rng(2)
    values = {m: list(rng.uniform(0, 1, 9)) for m in (LRAN, BASE, RAN)}
    result = compare_models(scores_frame(values), ENERGY, "cam", n_resamples=FEW)
    assert [(p.model_a, p.model_b) for p in result.pairs] == [
        (BASE, RAN),
        (BASE, LRAN),
        (RAN, LRAN),
    ]
    assert [m.model for m in result.means] == [BASE, RAN, LRAN]
    for mean in result.means:
        assert mean.n == 9
        assert mean.mean == pytest.approx(float(np.mean(values[mean.model])))
    diff = np.array(values[LRAN]) - np.array(values[RAN])
    assert result.pairs[2].mean_difference == pytest.approx(float(np.mean(diff)))
    assert result.pairs[2].p_value == pytest.approx(float(stats.wilcoxon(diff).pvalue))


def test_results_are_plain_and_json_able():
    a, b = random_pairs(10)
    result = compare_models(scores_frame({BASE: list(a), RAN: list(b)}), ENERGY, "cam")
    as_dict = result.as_dict()
    assert is_plain(as_dict)
    json.dumps(as_dict)
    pair = result.pairs[0]
    assert type(pair.n) is int and type(pair.mean_difference) is float
    assert type(pair.p_value) is float and all(type(x) is float for x in pair.ci)
    with pytest.raises(AttributeError):
        pair.n = 3  # type: ignore[misc]


def test_summary_reads_as_a_sentence():
    a, b = random_pairs(10)
    pair = compare_pair(scores_frame({RAN: list(a), LRAN: list(b)}), ENERGY, "cam", RAN, LRAN)
    text = pair.summary()
    assert text.startswith(f"R-LRAN vs R-RAN on CAM energy: {pair.mean_difference:+.3f} (95% CI ")
    assert f"{pair.wins} better, {pair.losses} worse, {pair.ties} within ±0.02" in text
    assert text.endswith(f"Wilcoxon p = {pair.p_value:.2g}; n = 10")
    mean = model_mean(scores_frame({BASE: list(a)}), ENERGY, "cam", BASE)
    assert mean.summary().startswith(f"ResNet-18 CAM energy: {np.mean(a):.3f} (95% CI ")


def test_bad_input_is_refused():
    frame = scores_frame({RAN: [0.1, 0.2], LRAN: [0.3, 0.4]})
    with pytest.raises(ValueError, match="unknown score"):
        compare_pair(frame, "accuracy", "cam", RAN, LRAN)
    with pytest.raises(ValueError, match="two different models"):
        compare_pair(frame, ENERGY, "cam", RAN, RAN)
    with pytest.raises(ValueError, match="lacks column"):
        compare_pair(frame.drop(columns="review_id"), ENERGY, "cam", RAN, LRAN)
    # Two readers' reviews of one item share no review_id, but an unfiltered join could repeat
    # a (review, model, map) row: refused rather than silently averaged.
    with pytest.raises(ValueError, match="two rows for review 1"):
        compare_pair(pd.concat([frame, frame.iloc[:1]]), ENERGY, "cam", RAN, LRAN)


# --- Readers: Cohen's kappa --------------------------------------------------------------------


def test_cohen_kappa_ci_pairs_items_and_matches_sklearn_and_scipy():
    rng = np.random.default_rng(3)
    classes = ["normal", "benign", "in situ", "invasive"]
    items = [f"item{i:02d}" for i in range(40)]
    x = rng.choice(classes, 40)
    y = np.where(rng.random(40) < 0.6, x, rng.choice(classes, 40))
    # Reader A skipped item00 and left item01 unlabelled; reader B never saw item39, and B's
    # labels come in shuffled order: pairing is by item, so 37 items (item02 .. item38) remain.
    a = pd.Series(x, index=items, dtype=object)
    a = a.drop("item00")
    a["item01"] = None
    order = rng.permutation(39)
    b = pd.Series(y[:39], index=items[:39], dtype=object).iloc[order]
    result = cohen_kappa_ci(a, b, n_resamples=FEW, seed=2)

    shared = [f"item{i:02d}" for i in range(2, 39)]
    xs, ys = x[2:39], y[2:39]
    assert result.n == len(shared) == 37
    assert result.raters == 2 and result.statistic == "Cohen's kappa"
    assert result.kappa == pytest.approx(cohen_kappa_score(xs, ys))
    expected = stats.bootstrap(
        (xs.astype(object), ys.astype(object)),
        lambda p, q: cohen_kappa_score(p, q),
        paired=True,
        vectorized=False,
        n_resamples=FEW,
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))
    assert result.undefined_resamples == 0
    # A mapping gives the same as a Series.
    assert cohen_kappa_ci(dict(a), dict(b), n_resamples=FEW, seed=2) == result


def test_cohen_kappa_ci_by_hand_and_undefined_cases():
    a = {"p": "benign", "q": "benign", "r": "invasive", "s": "invasive"}
    b = {"p": "benign", "q": "invasive", "r": "invasive", "s": "invasive"}
    # p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2 -> kappa = 0.5.
    assert cohen_kappa_ci(a, b, n_resamples=FEW).kappa == pytest.approx(0.5)
    # Fewer than 2 shared items: undefined.
    one = cohen_kappa_ci({"p": "benign"}, {"p": "invasive", "q": "benign"})
    assert (one.kappa, one.ci, one.n) == (None, None, 1)
    none = cohen_kappa_ci({}, {"p": "benign"})
    assert (none.kappa, none.ci, none.n) == (None, None, 0)
    # One label throughout: kappa undefined (0 / 0), as the existing cohen_kappa gives NaN.
    same = cohen_kappa_ci({"p": "x", "q": "x", "r": "x"}, {"p": "x", "q": "x", "r": "x"})
    assert (same.kappa, same.ci, same.n) == (None, None, 3)
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))
    # Two items, full agreement on two labels: kappa 1, but about half of the resamples hold one
    # item twice (one label throughout), so there is no interval and the result says why.
    two = cohen_kappa_ci({"p": "x", "q": "y"}, {"p": "x", "q": "y"}, n_resamples=FEW)
    assert two.kappa == pytest.approx(1.0)
    assert two.ci is None
    assert 0.3 * FEW < two.undefined_resamples < 0.7 * FEW
    assert "resamples had one label throughout" in two.summary()
    with pytest.raises(ValueError, match="two labels"):
        cohen_kappa_ci(pd.Series(["x", "y"], index=["p", "p"]), {"p": "x"})


# --- Readers: Fleiss' kappa --------------------------------------------------------------------


def test_fleiss_kappa_ci_by_hand():
    # 3 items, 3 raters: A A A / A A B / B B B -> P_bar = 7/9, P_e = 41/81, kappa = 0.55
    # (worked in tests/test_annotations_scores.py).
    ratings = [["A", "A", "A"], ["A", "A", "B"], ["B", "B", "B"]]
    result = fleiss_kappa_ci(ratings, n_resamples=FEW)
    assert result.kappa == pytest.approx(0.55)
    assert result.kappa == pytest.approx(fleiss_kappa(ratings))
    assert (result.n, result.raters, result.statistic) == (3, 3, "Fleiss' kappa")


def test_fleiss_kappa_ci_matches_statsmodels_and_scipy():
    rng = np.random.default_rng(4)
    truth = rng.choice(["benign", "in situ", "invasive"], 30)
    table = pd.DataFrame(
        {
            reader: np.where(rng.random(30) < 0.7, truth, rng.choice(["benign", "invasive"], 30))
            for reader in ("r1", "r2", "r3", "r4")
        },
        dtype=object,
    )
    table.loc[[0, 5], "r3"] = None  # not labelled by r3: items 0 and 5 are left out
    result = fleiss_kappa_ci(table, n_resamples=FEW, seed=5)

    complete = table.drop(index=[0, 5]).to_numpy(dtype=object)
    assert (result.n, result.raters) == (28, 4)
    assert result.kappa == pytest.approx(sm_fleiss_kappa(aggregate_raters(complete)[0]))

    def statsmodels_fleiss(*columns: np.ndarray) -> float:
        return sm_fleiss_kappa(aggregate_raters(np.column_stack(columns))[0])

    expected = stats.bootstrap(
        tuple(complete.T),
        statsmodels_fleiss,
        paired=True,
        vectorized=False,
        n_resamples=FEW,
        rng=np.random.default_rng(5),
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))
    assert result.ci[0] < result.kappa < result.ci[1]
    assert result.summary() == (
        f"Fleiss' kappa {result.kappa:.2f} (95% CI {result.ci[0]:.2f} to {result.ci[1]:.2f}); "
        "n = 28 items"
    )


def test_fleiss_kappa_ci_undefined_cases():
    one_label = fleiss_kappa_ci([["A", "A", "A"], ["A", "A", "A"]])
    assert (one_label.kappa, one_label.ci, one_label.n) == (None, None, 2)
    assert math.isnan(fleiss_kappa([["A", "A", "A"], ["A", "A", "A"]]))
    one_item = fleiss_kappa_ci([["A", "B", "A"]])
    assert (one_item.kappa, one_item.ci, one_item.n) == (None, None, 1)
    nobody_complete = fleiss_kappa_ci(pd.DataFrame({"r1": ["A", None], "r2": [None, "B"]}))
    assert (nobody_complete.kappa, nobody_complete.n) == (None, 0)
    with pytest.raises(ValueError, match="at least 2 readers"):
        fleiss_kappa_ci(pd.DataFrame({"r1": ["A", "B"]}))


# --- Readers: Dice of regions ------------------------------------------------------------------


def test_reader_dice_by_hand_and_against_scipy():
    full = np.ones((2, 2), dtype=bool)
    top = np.array([[True, True], [False, False]])
    corner = np.array([[True, False], [False, False]])
    empty = np.zeros((2, 2), dtype=bool)
    a = {"i1": full, "i2": top, "i3": corner, "i4": empty, "only_a": full}
    b = {"i1": top, "i2": top, "i3": full, "i4": empty, "only_b": full}
    result = reader_dice(a, b, n_resamples=FEW, seed=6)
    # i1: 2*2/(4+2) = 2/3; i2: 1; i3: 2*1/(1+4) = 0.4; i4: both empty -> 1.
    assert [k for k, _ in result.per_item] == ["i1", "i2", "i3", "i4"]
    assert [d for _, d in result.per_item] == pytest.approx([2 / 3, 1.0, 0.4, 1.0])
    assert [d for _, d in result.per_item] == [
        region_dice(a[k], b[k]) for k in ("i1", "i2", "i3", "i4")
    ]
    assert result.n == 4
    assert result.mean == pytest.approx((2 / 3 + 1 + 0.4 + 1) / 4)
    expected = stats.bootstrap(
        (np.array([2 / 3, 1.0, 0.4, 1.0]),), np.mean, n_resamples=FEW, rng=np.random.default_rng(6)
    ).confidence_interval
    assert result.ci == pytest.approx((expected.low, expected.high))
    assert result.summary().startswith("Dice of the regions 0.77 (95% CI ")
    assert result.summary().endswith("; n = 4 items")
    json.dumps(result.as_dict())


def test_reader_dice_edge_cases():
    mask = np.eye(3, dtype=bool)
    none = reader_dice({"a": mask}, {"b": mask})
    assert (none.mean, none.ci, none.n, none.per_item) == (None, None, 0, ())
    one = reader_dice({"a": mask}, {"a": mask})
    assert (one.mean, one.ci, one.n) == (1.0, None, 1)
    same = reader_dice({"a": mask, "b": mask}, {"a": mask, "b": mask})
    assert (same.mean, same.ci) == (1.0, None)
    with pytest.raises(ValueError, match="shape"):
        reader_dice({"a": mask}, {"a": np.ones((2, 2), dtype=bool)})
