"""Scoring maps against a large region: on a grid of at most SCORE_SIDE px, with the same
figures as at full size and the tolerance kept in micrometres."""

from __future__ import annotations

import numpy as np
import pytest

import review.scoring as scoring
from review.scoring import SCORE_SIDE, ScoredMap, score_maps, scoring_grid


def test_a_region_up_to_the_side_is_scored_as_it_is() -> None:
    region = np.zeros((300, 200), bool)
    region[50:100, 20:80] = True
    grid, scale = scoring_grid(region)
    assert scale == 1.0 and grid.shape == (300, 200) and np.array_equal(grid, region)


def test_a_large_region_is_reduced_keeping_its_shape_and_area() -> None:
    height, width = 3 * SCORE_SIDE, 2 * SCORE_SIDE
    region = np.zeros((height, width), bool)
    region[600:3000, 900:2100] = True
    grid, scale = scoring_grid(region)
    assert grid.shape == (SCORE_SIDE, round(width / 3)) and scale == pytest.approx(1 / 3)
    # The same share of the image, to within a grid pixel's rim.
    assert grid.mean() == pytest.approx(region.mean(), rel=0.01)
    assert grid[300, 400] and not grid[100, 100]


def test_a_region_under_half_a_grid_pixel_is_kept() -> None:
    region = np.zeros((4 * SCORE_SIDE, 4 * SCORE_SIDE), bool)
    region[101, 203] = True  # a quarter of a grid pixel of 4 x 4
    grid, _ = scoring_grid(region)
    assert int(grid.sum()) == 1 and grid[101 // 4, 203 // 4]


def test_scores_on_the_grid_match_the_full_size_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    side = 2 * SCORE_SIDE + 100
    yy, xx = np.mgrid[0:64, 0:64]
    heat = np.exp(-(((xx - 40) / 8.0) ** 2 + ((yy - 20) / 8.0) ** 2)).astype(np.float32)
    region = np.zeros((side, side), bool)
    c = side / 64
    region[int(12 * c) : int(28 * c), int(32 * c) : int(48 * c)] = True
    maps = {"m": {"cam": ScoredMap(heat, "positive")}}
    reduced = score_maps(maps, region, mpp=0.5)[0]
    # Full size: the same scores with the grid side raised above the region's.
    monkeypatch.setattr(scoring, "SCORE_SIDE", side)
    full = score_maps(maps, region, mpp=0.5)[0]
    assert reduced.pointing_game is True and full.pointing_game is True
    assert reduced.tolerance_px == full.tolerance_px == 30.0  # 15 µm at 0.5 µm/px
    assert reduced.auroc == pytest.approx(full.auroc, abs=0.002)
    assert reduced.energy_pointing_game == pytest.approx(full.energy_pointing_game, abs=0.005)
    assert reduced.iou_50 == pytest.approx(full.iou_50, abs=0.01)
