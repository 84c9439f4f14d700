"""Region-level maps: every window classified as the model would, no seams, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lran_core import build_model, load_model, save_checkpoint
from lran_core.evaluate import labelled_images, read_tumour, region_localisation
from lran_core.evaluate import main as evaluate_main
from lran_core.mapquality import localisation
from lran_core.maps import resize_map
from lran_core.models import LRANClassifier
from lran_core.models.attention import spatial_softmax
from lran_core.region import (
    RegionError,
    RegionMaps,
    RegionTooLargeError,
    _attention,
    _gib,
    estimate_region_bytes,
    field_of_view_um,
    map_region,
    native_size,
    window_maps,
)

ROOT = Path(__file__).resolve().parent.parent
BACH = ROOT.parent / "shared" / "data" / "bach-a03" / "regions"
VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")


def tiny(variant: str, seed: int = 0, padding_mode: str = "zeros") -> LRANClassifier:
    """A random-weight model at a 32 px input, trained (it says) at 4.0 um/px: a 128 um field."""
    torch.manual_seed(seed)
    model = build_model(
        variant, num_classes=2, widths=(4, 8, 8, 8, 8), padding_mode=padding_mode
    ).eval()
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


def test_maps_have_the_image_shape_and_probs_sum_to_one(models):
    out = map_region(models, rgb(70, 90), mpp=4.0)
    assert set(out) == set(VARIANTS)
    for name, m in out.items():
        assert isinstance(m, RegionMaps)
        assert m.probs.shape == (2, 70, 90) and m.probs.dtype == np.float32
        assert m.cam.shape == (70, 90) and m.cam.dtype == np.float32
        assert m.cam_class == 1
        # Interpolating probabilities keeps every pixel's sum at 1.
        np.testing.assert_allclose(m.probs.sum(0), 1.0, atol=1e-5)
        # 70 x 90 px at 1 input px per image px: 5 x 6 cells of 16 px, a window per corner.
        assert (m.windows, m.blocks, m.window_overlap) == (6 * 7, 1, 0.5)
        if name == "resnet18":
            assert m.attention is None
        else:
            assert m.attention.shape == (70, 90)
            assert np.all(m.attention > 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_window_is_classified_as_the_model_classifies_that_window(variant):
    # The model's own arithmetic on the features of one window (spatial softmax over the
    # window, H = B * M + B, pooling, linear layer) against the box-sum form for all windows.
    model = tiny(variant)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 128, 160)
    b, logits, _ = model.dense_features(x)
    k = 2  # a 32 px input is 2 cells of 16 px
    cells = (b.shape[-2] - k, b.shape[-1] - k)
    corner_logits, h_cells = window_maps(
        b[0], None if logits is None else logits[0], model.fc.weight, model.fc.bias, k, cells
    )
    assert corner_logits.shape == (2, cells[0] + 1, cells[1] + 1)
    for i, j in [(0, 0), (2, 3), (cells[0], cells[1])]:
        window = b[0, :, i : i + k, j : j + k]
        if logits is not None:
            m = spatial_softmax(logits[:, :, i : i + k, j : j + k])[0]
            window = window * m + window
        want = model.fc(window.mean(dim=(1, 2)))
        torch.testing.assert_close(corner_logits[:, i, j].float(), want, rtol=1e-4, atol=1e-5)
    assert h_cells.shape == (b.shape[1], *cells)


def test_attention_map_is_exp_a_over_its_mean_in_the_window_around_each_point():
    # Against the definition, point by point: the mean over the (2k + 1)^2 window that lies
    # inside the grid (fewer points at the border), per channel, then over channels.
    torch.manual_seed(2)
    fine = torch.randn(40, 23, 31) * 3
    k = 4
    got = _attention(fine, k)
    e = torch.exp(fine - fine.amax(dim=(1, 2), keepdim=True)).double()
    for i, j in [(0, 0), (0, 30), (11, 15), (22, 3), (5, 29)]:
        window = e[:, max(0, i - k) : i + k + 1, max(0, j - k) : j + k + 1]
        want = (e[:, i, j] / window.mean(dim=(1, 2))).mean()
        assert got[i, j].item() == pytest.approx(want.item(), rel=1e-5)
    assert got.shape == (23, 31)


def test_a_uniform_texture_gives_a_map_with_no_tile_grid():
    # A texture with the period of one feature cell: every window sees the same tissue, so the
    # maps must be flat away from the image border, and blocks must barely show.
    model = tiny("resnet18-lran", padding_mode="reflect")
    cell = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    texture = np.tile(cell, (20, 22, 1))  # 320 x 352 px at 1 input px per image px
    whole = map_region({"m": model}, texture, mpp=4.0, precision="fp32")["m"]
    blocked = map_region({"m": model}, texture, mpp=4.0, precision="fp32", block=128)["m"]
    assert whole.blocks == 1 and blocked.blocks >= 4
    inner = (slice(96, -96), slice(96, -96))
    for maps, tolerance in ((whole, 0.01), (blocked, 0.03)):
        for values in (maps.probs[1], maps.cam, maps.attention):
            assert np.ptp(values[inner]) <= tolerance * np.abs(values).max()
    np.testing.assert_allclose(blocked.probs, whole.probs, atol=0.02)


def test_blocks_blend_continuously_on_real_looking_tissue(models):
    # Random tissue, blocks forced small: no jump between neighbouring pixels at a block border
    # is larger than the largest jump inside the blocks.
    image = rgb(160, 480, seed=5)
    maps = map_region(models, image, mpp=4.0, precision="fp32", block=128)
    for m in maps.values():
        assert m.blocks > 1
        step = np.abs(np.diff(m.cam, axis=1)).max(axis=0)
        # Blocks start every 128 px of the padded input, 16 px (half a field) before the image.
        borders = [x - 16 - 1 for x in range(128, 480, 128)]
        inside = np.delete(step, borders)
        assert step[borders].max() <= inside.max() * 1.5


def test_resampling_from_mpp_gives_maps_at_the_original_size(models):
    image = rgb(40, 56)
    # At 8 um/px the image is 80 x 112 px at the model's input scale (4 um/px): 5 x 7 cells.
    out = map_region(models, image, mpp=8.0)
    for m in out.values():
        assert m.windows == 6 * 8
        assert m.probs.shape == (2, 40, 56) and m.cam.shape == (40, 56)
    # Finer than the model: 200 x 200 px at 1 um/px is 50 x 50 at 4 um/px, 4 x 4 cells.
    out = map_region({"b": models["resnet18"]}, rgb(200, 200), mpp=1.0)
    assert out["b"].windows == 5 * 5 and out["b"].probs.shape == (2, 200, 200)
    # Smaller than one field: 10 x 15 px at 8 um/px is 20 x 30, 2 x 2 cells with mirrored context.
    out = map_region({"b": models["resnet18"]}, rgb(10, 15), mpp=8.0)
    assert out["b"].windows == 3 * 3 and out["b"].cam.shape == (10, 15)


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
    out = map_region(models, rgb(160, 160), mpp=4.0, block=64, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert len(seen) == sum(m.blocks for m in out.values()) > 3


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
    # Blocks stream through; only maps and feature grids (per pixel) and one block's
    # activations (a constant) take memory.
    sizes = [estimate_region_bytes(models, (n, n), 4.0) for n in (2000, 4000, 8000)]
    assert sizes[2] - sizes[1] == pytest.approx(4 * (sizes[1] - sizes[0]), rel=1e-2)
    assert estimate_region_bytes(models, (2000, 2000), 4.0, block=2048) > sizes[0]


def test_bad_class_is_refused(models):
    with pytest.raises(RegionError, match="cam_class 2"):
        map_region(models, rgb(40, 40), mpp=4.0, cam_class=2)


def test_a_large_regions_maps_are_kept_small_and_resized_where_pixels_are_needed(models):
    image = rgb(1500, 2000, seed=7)
    out = map_region(models, image, mpp=1.0)
    for m in out.values():
        assert m.image_shape == (1500, 2000)
        assert m.probs.shape == (2, 768, 1024) and m.cam.shape == (768, 1024)
    full = map_region({"b": models["resnet18"]}, image, mpp=1.0, map_side=None)["b"]
    assert full.cam.shape == (1500, 2000)
    kept = out["resnet18"].cam
    # The kept map is the full one at a smaller size: resized back, the same values.
    scale = np.abs(full.cam).max()
    np.testing.assert_allclose(resize_map(kept, (1500, 2000)), full.cam, atol=0.02 * scale)


def test_region_localisation_scores_each_labelled_image_against_its_tumour(models, tmp_path):
    half = np.zeros((96, 128), np.uint8)
    half[:, :64] = 3  # invasive carcinoma on the left half
    benign = np.ones((96, 128), np.uint8)
    for name, mask, seed in (("a", half, 1), ("b", benign, 2)):
        Image.fromarray(rgb(96, 128, seed)).save(tmp_path / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / f"{name}_mask.png")
    Image.fromarray(rgb(96, 128, 3)).save(tmp_path / "unlabelled.png")
    model = models["resnet18-lran"]
    result = region_localisation(model, tmp_path, 4.0)
    assert result["n"] == 2 and set(result["per_image"]) == {"a", "b"}
    a, b = result["per_image"]["a"], result["per_image"]["b"]
    assert a["mask_share"] == 0.5 and b["mask_share"] == 0.0
    # The same figures as scoring the region maps by hand.
    maps = map_region({"m": model}, rgb(96, 128, 1), 4.0)["m"]
    expected = localisation(resize_map(maps.cam, (96, 128)), half == 3)
    assert a["cam"] == {"energy": expected["energy"], "auroc": expected["auroc"]}
    # No tumour in b: nothing to point at, so its scores are undefined and the mean is a's.
    assert b["probability"]["auroc"] is None and b["attention"] == {"energy": None, "auroc": None}
    assert result["mean"]["attention"] == a["attention"]
    assert 0.0 <= a["probability"]["auroc"] <= 1.0

    bare = tiny("resnet18")
    save_checkpoint(bare, tmp_path / "m.safetensors", class_names=["neg", "pos"], half=False)
    data = tmp_path / "patches"
    for cls in ("neg", "pos"):
        (data / cls).mkdir(parents=True)
        Image.fromarray(rgb(32, 32)).save(data / cls / "x.png")
    argv = ["--model", str(tmp_path / "m.safetensors"), "--data", str(data)]
    out = evaluate_main(
        [*argv, "--json", str(tmp_path / "e.json"), "--maps", "--regions", str(tmp_path), "4.0"]
    )
    assert out["maps"]["localisation"][str(tmp_path)]["n"] == 2
    assert "attention" not in out["maps"]["localisation"][str(tmp_path)]["mean"]
    with pytest.raises(SystemExit):
        evaluate_main([*argv, "--json", str(tmp_path / "f.json"), "--regions", str(tmp_path), "4"])


def test_a_mask_of_another_size_or_not_of_bach_labels_is_refused(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "r.png")
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(tmp_path / "r_mask.png")  # transposed
    with pytest.raises(
        ValueError, match=r"r_mask\.png: 20 x 30 px, but its image r\.png is 30 x 20"
    ):
        labelled_images(tmp_path)
    binary = np.zeros((20, 30), np.uint8)
    binary[5:, 10:] = 255
    Image.fromarray(binary).save(tmp_path / "r_mask.png")
    with pytest.raises(ValueError, match="values 255 are not BACH labels"):
        labelled_images(tmp_path)
    with pytest.raises(ValueError, match="not BACH labels"):
        read_tumour(tmp_path / "r_mask.png")


def test_tumour_is_labels_2_and_3_of_a_grey_or_rgb_mask(tmp_path):
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    Image.fromarray(labels).save(tmp_path / "grey.png")
    Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    for name in ("grey.png", "rgb.png"):
        assert read_tumour(tmp_path / name).tolist() == [[False, False], [True, True]]
    with pytest.raises(FileNotFoundError, match=r"no <name>\.png with a <name>_mask\.png"):
        labelled_images(tmp_path)
    Image.fromarray(labels).save(tmp_path / "grey_mask.png")
    assert labelled_images(tmp_path) == [(tmp_path / "grey.png", tmp_path / "grey_mask.png")]


class _RedAttention(torch.nn.Module):
    """An attention branch whose logits are high where the image is red, at stride 8 (the real
    branch's, with 5 levels and 2 decoder levels)."""

    output_stride = 8

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        red = torch.nn.functional.avg_pool2d(x[:, :1], self.output_stride)
        return (5 * red).repeat(1, self.channels, 1, 1), []


@pytest.mark.parametrize("cut", ["layer3", "layer2"])
def test_the_region_attention_map_is_where_the_attention_is_for_every_cut(cut: str) -> None:
    # Base stride 16 (layer3) or 8 (layer2), attention stride 8: the map was placed as if the
    # attention were always twice as fine as the base (layer2's red square came out at half
    # its place).
    torch.manual_seed(0)
    model = build_model("resnet18-lran", 2, cut=cut).eval()
    model.attention_branch = _RedAttention(model.features.out_channels)
    model.meta.mpp, model.meta.input_size, model.meta.native_size = 1.0, 64, None
    rgb = np.full((256, 256, 3), 100, np.uint8)
    rgb[64:80, 160:176, 0] = 255  # centred at (72, 168)
    maps = map_region({"m": model}, rgb, 1.0, precision="fp32", map_side=None)["m"]
    assert maps.attention is not None
    y, x = np.unravel_index(maps.attention.argmax(), maps.attention.shape)
    assert abs(y - 72) <= 6 and abs(x - 168) <= 6, (y, x)
