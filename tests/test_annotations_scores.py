"""Agreement scores (design.md section 3) against values worked out by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from annotations.scores import (
    SCORE_NAMES,
    agreement,
    auroc,
    dice_at,
    energy_pointing_game,
    iou_at,
    pointing_game,
    region_dice,
)
from review.compare import cohen_kappa, fleiss_kappa

# A 4 x 4 map and region used by several tests.
#   S = 0 0 0 0      G = . . . .
#       0 1 2 0          . x x .
#       0 3 4 0          . . . .
#       0 0 0 -5         . . . .
S4 = np.array([[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, -5]], dtype=float)
G4 = np.zeros((4, 4), dtype=bool)
G4[1, 1:3] = True


def test_energy_pointing_game_by_hand():
    # ReLU drops the -5: sum S = 1 + 2 + 3 + 4 = 10; inside G: 1 + 2 = 3 -> 0.3.
    assert energy_pointing_game(S4, G4) == pytest.approx(0.3)


def test_iou_and_dice_by_hand():
    # tau 0.5: B = [S >= 2] = {(1,2)=2, (2,1)=3, (2,2)=4}; G = {(1,1), (1,2)}.
    # |B & G| = 1, |B | G| = 4 -> IoU 0.25; Dice = 2 * 1 / (3 + 2) = 0.4.
    assert iou_at(S4, G4, 0.5) == pytest.approx(0.25)
    assert dice_at(S4, G4, 0.5) == pytest.approx(0.4)
    # tau 0.2: B = [S >= 0.8] = the four positive pixels; |B & G| = 2, |B | G| = 4 -> 0.5;
    # Dice = 2 * 2 / (4 + 2) = 2/3.
    assert iou_at(S4, G4, 0.2) == pytest.approx(0.5)
    assert dice_at(S4, G4, 0.2) == pytest.approx(2 / 3)
    # tau 0.9: B = [S >= 3.6] = {(2,2)}; no overlap -> 0 and 0.
    assert iou_at(S4, G4, 0.9) == 0.0
    assert dice_at(S4, G4, 0.9) == 0.0


def test_auroc_by_hand():
    # After ReLU, positives (G) score 1 and 2; the 14 negatives are 3, 4 and twelve 0s.
    # Pairs won by a positive: 1 beats 12 zeros, 2 beats 12 zeros -> U = 24 (no ties across).
    # AUROC = 24 / (2 * 14) = 6/7.
    assert auroc(S4, G4) == pytest.approx(24 / 28)


def test_auroc_counts_ties_half():
    # S = [1, 1, 0], G = [x, ., .]: the positive ties one negative (1/2) and beats one (1):
    # U = 1.5, n+ n- = 2 -> 0.75.
    s = np.array([[1.0, 1.0, 0.0]])
    g = np.array([[True, False, False]])
    assert auroc(s, g) == pytest.approx(0.75)


def test_auroc_matches_sklearn_on_random_data():
    rng = np.random.default_rng(7)
    for _ in range(5):
        # Rounded scores so that ties occur; labels correlated with the scores.
        s = np.round(rng.random((30, 40)), 2)
        g = rng.random((30, 40)) < 0.3 + 0.4 * s
        assert auroc(s, g) == pytest.approx(roc_auc_score(g.ravel(), s.ravel()), abs=1e-12)


def test_pointing_game_tolerance_is_euclidean():
    s = np.zeros((50, 50))
    s[10, 10] = 1.0
    g = np.zeros((50, 50), dtype=bool)
    # Nearest region pixel at (19, 22): distance sqrt(9^2 + 12^2) = 15 -> a hit at 15 px.
    g[19:, 22:] = True
    assert pointing_game(s, g) is True
    assert pointing_game(s, g, tolerance_px=14.9) is False
    # Shift the region one pixel away: sqrt(9^2 + 13^2) = 15.81 > 15 -> miss.
    g2 = np.zeros((50, 50), dtype=bool)
    g2[19:, 23:] = True
    assert pointing_game(s, g2) is False


def test_pointing_game_distance_zero_and_relu():
    assert pointing_game(S4, G4, tolerance_px=0) is False  # peak 4 at (2, 2), just below G
    assert pointing_game(S4, G4, tolerance_px=1) is True
    # An all-negative map is all zero after ReLU and points nowhere, although its raw argmax
    # (-1 at (0, 0)) lies inside the region.
    negative = -1.0 - np.arange(16, dtype=float).reshape(4, 4)
    corner = np.zeros((4, 4), dtype=bool)
    corner[0, 0] = True
    assert pointing_game(negative, corner) is False


def test_agreement_keys_and_values():
    result = agreement(S4, G4)
    assert result.tolerance_px == 15
    scores = result.values()
    assert tuple(scores) == SCORE_NAMES
    assert scores["pointing_game"] is True  # (2, 2) is 1 px from (1, 2)
    assert scores["energy_pointing_game"] == pytest.approx(0.3)
    assert scores["iou_50"] == pytest.approx(0.25)
    assert scores["dice_50"] == pytest.approx(0.4)
    # Per tau (max S = 4): tau 0.1, 0.2 -> B = all 4 positives (IoU 2/4, Dice 4/6);
    # tau 0.3, 0.4, 0.5 -> B = {2, 3, 4} (IoU 1/4, Dice 2/5);
    # tau 0.6, 0.7 -> B = {3, 4} (IoU 0, Dice 0); tau 0.8, 0.9 -> B = {4} (0, 0).
    assert scores["iou_mean"] == pytest.approx((2 * 0.5 + 3 * 0.25) / 9)
    assert scores["dice_mean"] == pytest.approx((2 * 4 / 6 + 3 * 0.4) / 9)
    assert scores["auroc"] == pytest.approx(24 / 28)


def test_all_zero_map():
    zero = np.zeros((4, 4))
    scores = agreement(zero, G4).values()
    assert scores["pointing_game"] is False
    assert scores["energy_pointing_game"] == 0.0
    # B is empty, so the overlap is 0 although S >= tau * 0 holds everywhere.
    assert scores["iou_50"] == 0.0 and scores["dice_mean"] == 0.0
    assert scores["auroc"] == pytest.approx(0.5)  # every pixel tied


def test_empty_region_gives_no_scores_and_a_full_one_no_auroc():
    # design.md §3: an empty region cannot be pointed at; every score is undefined (None), not
    # 0, so that comparisons leave it out.
    empty = np.zeros((4, 4), dtype=bool)
    assert set(agreement(S4, empty).values().values()) == {None}
    assert auroc(S4, np.ones((4, 4), dtype=bool)) is None
    assert agreement(S4, np.ones((4, 4), dtype=bool)).auroc is None


def test_a_tied_maximum_hits_when_any_of_its_pixels_does():
    # Quantus's rule: the maximum 1 is tied at (0, 0) and (3, 3); only (3, 3) is in G.
    tied = np.zeros((4, 4))
    tied[0, 0] = tied[3, 3] = 1
    region = np.zeros((4, 4), dtype=bool)
    region[3, 3] = True
    assert pointing_game(tied, region, tolerance_px=0) is True
    assert pointing_game(tied, np.eye(4, dtype=bool)[::-1] & ~np.eye(4, dtype=bool), 0) is False


def test_map_of_another_size_is_refused():
    with pytest.raises(ValueError, match="differs from saliency map shape"):
        agreement(np.zeros((8, 8)), G4)
    with pytest.raises(ValueError, match="2-D"):
        iou_at(np.zeros((4, 4, 3)), G4, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        energy_pointing_game(np.full((4, 4), np.nan), G4)


def test_region_dice():
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    a[0, :3] = True  # 3 pixels
    b[0, 1:] = True  # 3 pixels, 2 shared -> 2 * 2 / 6
    assert region_dice(a, b) == pytest.approx(2 / 3)
    assert region_dice(a, a) == 1.0
    assert region_dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError):
        region_dice(a, np.zeros((3, 3)))


def test_cohen_kappa_by_hand_and_against_sklearn():
    a = ["benign", "benign", "invasive", "invasive"]
    b = ["benign", "invasive", "invasive", "invasive"]
    # p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2 -> kappa = (0.75 - 0.5) / 0.5 = 0.5.
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    classes = ["normal", "benign", "in situ", "invasive", "unsure"]
    x = list(rng.choice(classes, 60))
    y = [v if rng.random() < 0.6 else str(rng.choice(classes)) for v in x]
    assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y))
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_fleiss_kappa_by_hand():
    # 3 items, 3 raters, categories A/B:
    #   item 1: A A A -> P_1 = (9 - 3) / 6 = 1
    #   item 2: A A B -> P_2 = (4 + 1 - 3) / 6 = 1/3
    #   item 3: B B B -> P_3 = 1
    # P_bar = 7/9; p_A = 5/9, p_B = 4/9 -> P_e = 41/81.
    # kappa = (7/9 - 41/81) / (1 - 41/81) = (22/81) / (40/81) = 0.55.
    ratings = [["A", "A", "A"], ["A", "A", "B"], ["B", "B", "B"]]
    assert fleiss_kappa(ratings) == pytest.approx(0.55)
    # Two raters: Fleiss' kappa reduces to Scott's pi; on these labels (marginals pooled:
    # p_benign = 3/8, p_invasive = 5/8, P_e = 34/64; P_bar = 3/4) -> (3/4 - 34/64) / (30/64).
    a = ["benign", "benign", "invasive", "invasive"]
    b = ["benign", "invasive", "invasive", "invasive"]
    assert fleiss_kappa(list(zip(a, b, strict=True))) == pytest.approx((48 - 34) / 30)
    with pytest.raises(ValueError, match="ratings"):
        fleiss_kappa([["A", "B"], ["A"]])
