"""Region-level maps: tiling from mpp, blending, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lran_core import build_model, load_model
from lran_core.models import LRANClassifier
from lran_core.region import (
    RegionError,
    RegionMaps,
    RegionTooLargeError,
    TileBlender,
    _gib,
    estimate_region_bytes,
    field_of_view_um,
    map_region,
    native_size,
    tile_starts,
    tile_window,
)

ROOT = Path(__file__).resolve().parent.parent
BACH = ROOT.parent / "shared" / "data" / "bach-a03" / "regions"
VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")


def tiny(variant: str, seed: int = 0) -> LRANClassifier:
    """A random-weight model at a 32 px input, trained (it says) at 4.0 um/px: a 128 um field."""
    torch.manual_seed(seed)
    model = build_model(variant, num_classes=2, widths=(4, 8, 8, 8, 8)).eval()
    model.meta.input_size = 32
    model.meta.mpp = 4.0
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, LRANClassifier]:
    return {v: tiny(v, i) for i, v in enumerate(VARIANTS)}


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_field_of_view_idc_and_default():
    idc = load_model("idc/resnet18").meta
    assert native_size(idc) == 50 and idc.mpp == 4.0
    assert field_of_view_um(idc) == pytest.approx(200.0)
    assert field_of_view_um(tiny("resnet18").meta) == pytest.approx(32 * 4.0)
    bare = tiny("resnet18").meta
    bare.mpp = None
    with pytest.raises(RegionError, match="no microns per pixel"):
        field_of_view_um(bare)


def test_tile_starts_cover_the_length_and_end_aligned():
    assert tile_starts(112, 32, 0.5) == [0, 16, 32, 48, 64, 80]
    assert tile_starts(80, 32, 0.0) == [0, 32, 48]
    assert tile_starts(32, 32, 0.5) == [0]


def test_maps_have_the_image_shape_and_probs_sum_to_one(models):
    out = map_region(models, rgb(70, 90), mpp=4.0, batch_size=8)
    assert set(out) == set(VARIANTS)
    for name, m in out.items():
        assert isinstance(m, RegionMaps)
        assert m.probs.shape == (2, 70, 90) and m.probs.dtype == np.float32
        assert m.cam.shape == (70, 90) and m.cam.dtype == np.float32
        assert m.cam_class == 1
        # Blending averages probabilities, so every pixel still sums to 1.
        np.testing.assert_allclose(m.probs.sum(0), 1.0, atol=1e-5)
        if name == "resnet18":
            assert m.attention is None
        else:
            assert m.attention.shape == (70, 90)
            assert np.all(m.attention > 0)


def test_blender_averages_overlaps_instead_of_last_wins():
    blender = TileBlender(1, 4, 6, 4)
    blender.add(0, 0, np.zeros((1, 4, 4), np.float32))
    blender.add(0, 2, np.ones((1, 4, 4), np.float32))
    row = blender.result()[0, 1]
    w = np.sin(np.pi * (np.arange(4) + 0.5) / 4)
    # Columns 0-1: only the first tile; 4-5: only the second; 2-3: both, weighted by the window.
    expected = [0, 0, w[0] / (w[2] + w[0]), w[1] / (w[3] + w[1]), 1, 1]
    np.testing.assert_allclose(row, expected, atol=1e-6)
    assert 0 < row[2] < row[3] < 1


def test_blender_keeps_a_constant_exactly():
    blender = TileBlender(2, 10, 10, 4)
    for y in tile_starts(10, 4, 0.5):
        for x in tile_starts(10, 4, 0.5):
            blender.add(y, x, np.full((2, 4, 4), 0.25, np.float32))
    np.testing.assert_allclose(blender.result(), 0.25, rtol=1e-6)
    assert tile_window(4).min() > 0


class PositionModel(LRANClassifier):
    """Its tile's CAM is the tile's mean red level: on a left-to-right ramp, a function of x."""

    def explain(self, x, size=None):
        out = super().explain(x, size)
        red = x[:, 0].mean(dim=(1, 2))
        out.cam = red.view(-1, 1, 1, 1).expand_as(out.cam).clone()
        return out


def test_stitched_map_of_a_ramp_is_smooth_not_stepped():
    model = PositionModel(attention="base", num_classes=2).eval()
    model.meta.input_size, model.meta.mpp = 32, 4.0
    ramp = np.repeat(np.linspace(0, 255, 128).astype(np.uint8)[None, :, None], 64, 0)
    image = np.repeat(ramp, 3, axis=2)
    cam = map_region({"m": model}, image, mpp=4.0, overlap=0.5)["m"].cam[32]
    tile_values = sorted({float(v) for v in np.unique(np.round(cam, 4))})
    # 7 tiles along x: last-wins would give 7 flat steps; blending gives a strictly rising ramp
    # inside the tiles' span, with many distinct values.
    assert len(tile_values) > 50
    assert np.all(np.diff(cam[16:112]) > 0)


def test_resampling_from_mpp_gives_the_expected_tiles_and_original_size(models):
    image = rgb(40, 56)
    # At 8 um/px the image is 80 x 112 px at the model's 4 um/px; 32 px tiles.
    out = map_region(models, image, mpp=8.0, overlap=0.5)
    for m in out.values():
        assert m.tiles == 4 * 6  # starts 0..48 by 16, and 0..80 by 16
        assert m.probs.shape == (2, 40, 56) and m.cam.shape == (40, 56)
    out = map_region({"b": models["resnet18"]}, image, mpp=8.0, overlap=0.0)
    assert out["b"].tiles == 3 * 4  # starts (0, 32, 48) and (0, 32, 64, 80)
    # Finer than the model: 200 x 200 px at 1 um/px is 50 x 50 at 4 um/px, padded to 2 x 2 tiles.
    out = map_region({"b": models["resnet18"]}, rgb(200, 200), mpp=1.0, overlap=0.0)
    assert out["b"].tiles == 4 and out["b"].probs.shape == (2, 200, 200)
    # Smaller than one field: 10 x 15 px at 8 um/px is 20 x 30, padded white to one 32 px tile.
    out = map_region({"b": models["resnet18"]}, rgb(10, 15), mpp=8.0)
    assert out["b"].tiles == 1 and out["b"].cam.shape == (10, 15)


def test_a_constant_model_gives_a_constant_map():
    model = tiny("resnet18")
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    out = map_region({"c": model}, rgb(50, 70), mpp=4.0, precision="fp32")["c"]
    np.testing.assert_allclose(out.probs[1], 0.75, atol=1e-6)
    np.testing.assert_allclose(out.cam, 0.0, atol=1e-6)


def test_bf16_agrees_with_fp32(models):
    image = rgb(60, 60)
    fp32 = map_region(models, image, mpp=4.0, precision="fp32")
    bf16 = map_region(models, image, mpp=4.0, precision="bf16")
    for name in models:
        np.testing.assert_allclose(bf16[name].probs, fp32[name].probs, atol=0.02)
        scale = np.abs(fp32[name].cam).max()
        np.testing.assert_allclose(bf16[name].cam, fp32[name].cam, atol=0.05 * scale)
    with pytest.raises(RegionError, match="precision must be one of"):
        map_region(models, image, mpp=4.0, precision="fp16")


def test_progress_reports_fractions_up_to_one(models):
    seen: list[float] = []
    map_region(models, rgb(40, 40), mpp=4.0, batch_size=2, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == 3 * 2


@pytest.mark.parametrize(
    ("mpp", "message"),
    [
        (None, "microns per pixel of the image are unknown"),
        (0.0, "must be a positive number"),
        (-1.0, "must be a positive number"),
        (float("nan"), "must be a positive number"),
        (470.0, "outside"),
        (0.00047, "outside"),
        (20.0, "5.0-fold up-sampling"),
    ],
)
def test_absurd_or_missing_mpp_is_refused(models, mpp, message):
    with pytest.raises(RegionError, match=message):
        map_region(models, rgb(40, 40), mpp=mpp)


def test_a_huge_image_is_refused_with_the_size_it_needs(models):
    # A 100,000 x 100,000 view of one pixel: no memory behind it, so refusal must come first.
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (100_000, 100_000, 3))
    needed = estimate_region_bytes(models, huge.shape[:2], 4.0)
    assert needed > 100_000**2 * 4 * 8  # 8 float32 output maps over three models at least
    with pytest.raises(RegionTooLargeError) as err:
        map_region(models, huge, mpp=4.0)
    assert _gib(needed) in str(err.value)
    with pytest.raises(RegionTooLargeError, match=r"more than the 0\.00 GiB available"):
        map_region(models, rgb(40, 40), mpp=4.0, limit_bytes=1000)


def test_memory_estimate_is_linear_in_pixels(models):
    # Tiles stream through; only maps (per pixel) and one batch (a constant) take memory.
    sizes = [estimate_region_bytes(models, (n, n), 4.0) for n in (1000, 2000, 4000)]
    assert sizes[2] - sizes[1] == pytest.approx(4 * (sizes[1] - sizes[0]), rel=1e-3)
    assert estimate_region_bytes(models, (1000, 1000), 4.0, batch_size=64) > sizes[0]


def test_bad_class_is_refused(models):
    with pytest.raises(RegionError, match="cam_class 2"):
        map_region(models, rgb(40, 40), mpp=4.0, cam_class=2)
