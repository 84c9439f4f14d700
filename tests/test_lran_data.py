"""Image loading (odd and broken files), dataset readers, splits, balanced batches, patches."""

import io
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lran_core.data import (
    BalancedBatchSampler,
    ImageReadError,
    PatchDataset,
    extract_patches,
    kfold_by_group,
    load_image,
    preprocess,
    read_class_folders,
    read_dataset,
    read_idc,
    read_mpp,
    source_image,
    split_by_group,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} absent (real data not here)")


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_rgba_is_composited_on_white():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half transparent
    out = load_image(_png(Image.fromarray(rgba, "RGBA")), name="a.png")
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[9, 0].tolist() == [255, 255, 255]


def test_grayscale_and_16_bit_are_converted():
    gray = load_image(_png(Image.fromarray(np.full((9, 9), 100, np.uint8), "L")))
    assert gray.shape == (9, 9, 3) and gray[0, 0].tolist() == [100, 100, 100]
    deep = np.full((9, 9), 65535, np.uint16)
    deep[0, 0] = 0
    out = load_image(_png(Image.fromarray(deep)))
    assert out[1, 1].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]
    # A float TIFF of intensities 0 to 1 (as image tools write them), and one of 0 to 255.
    for top in (1.0, 255.0):
        buf = io.BytesIO()
        Image.fromarray(np.full((9, 9), 0.5 * top, np.float32), "F").save(buf, format="TIFF")
        assert load_image(buf.getvalue())[4, 4].tolist() == [128, 128, 128], top


def test_broken_files_are_named_and_refused(tmp_path):
    good = _png(Image.new("RGB", (40, 40), (10, 20, 30)))
    with pytest.raises(ImageReadError, match=r"cut\.png: corrupt or truncated"):
        load_image(good[: len(good) // 2], name="cut.png")
    with pytest.raises(ImageReadError, match=r"notes\.txt: not a readable image"):
        load_image(b"hello, not a picture", name="notes.txt")
    with pytest.raises(ImageReadError, match=r"dot\.png: 1 x 1 pixels is too small"):
        load_image(_png(Image.new("RGB", (1, 1))), name="dot.png")
    with pytest.raises(ImageReadError, match=r"bomb\.png: refused as a decompression bomb"):
        load_image(_png_header_only(40000, 40000), name="bomb.png")
    with pytest.raises(ImageReadError, match=r"big\.png: 11000 x 11000 = 121,000,000 pixels"):
        load_image(_png_header_only(11000, 11000), name="big.png")
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_small_images_are_padded_for_datasets(tmp_path):
    for label in ("0", "1"):
        d = tmp_path / "p1" / label
        d.mkdir(parents=True)
        Image.new("RGB", (50, 6), (0, 0, 0)).save(d / "edge.png")
        (d / "broken.png").write_bytes(b"garbage")
    samples, names = read_idc(tmp_path)
    assert names == ["IDC-negative", "IDC-positive"]
    with pytest.warns(UserWarning, match=r"broken\.png"):
        ds = PatchDataset(samples, 100, native=50)
    assert len(ds) == 2 and len(ds.skipped) == 2
    img = ds[0][0].numpy()
    assert img.shape == (3, 100, 100)
    assert img[:, 0, 0].tolist() == [0, 0, 0]  # the real pixels, top-left
    assert img[:, 99, 99].tolist() == [255, 255, 255]  # white padding below the edge patch


def test_preprocess_normalises():
    x = preprocess(np.full((20, 30, 3), 255, np.uint8), 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (1, 3, 32, 32)
    assert float(x.max()) == pytest.approx(2.0)


def test_read_mpp_from_tiff_tags():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="TIFF", resolution=20000.0, resolution_unit=3)
    assert read_mpp(buf.getvalue()) == pytest.approx(0.5)  # 20000 px/cm = 0.5 um/px
    assert read_mpp(_png(Image.new("RGB", (16, 16)))) is None


def test_balanced_sampler_gives_equal_classes():
    labels = [0] * 90 + [1] * 10
    sampler = BalancedBatchSampler(labels, batch_size=8, num_batches=30, seed=3)
    batches = list(sampler)
    assert len(batches) == 30
    for b in batches:
        assert Counter(labels[i] for i in b) == {0: 4, 1: 4}
    # every minority sample is used, and a new epoch reshuffles reproducibly
    assert {i for b in batches for i in b if labels[i] == 1} == set(range(90, 100))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    assert list(BalancedBatchSampler(labels, 8, 30, seed=3)) == batches


def test_class_folders_and_image_level_split(tmp_path):
    for cls in ("benign", "malignant"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (12, 12)).save(tmp_path / cls / f"{i}.tif")
    samples, classes, layout = read_dataset(tmp_path)
    assert layout == "classes" and classes == ["benign", "malignant"] and len(samples) == 10
    train, val = split_by_group(samples, 0.2, seed=0)
    assert len(train) + len(val) == 10 and not {s.path for s in train} & {s.path for s in val}


def test_a_stray_folder_never_becomes_a_class_of_idc_data(tmp_path):
    for patient in ("8863", "9036"):
        for label in ("0", "1"):
            (tmp_path / patient / label).mkdir(parents=True)
            Image.new("RGB", (50, 50)).save(tmp_path / patient / label / f"{patient}_{label}.png")
    # A notebook's hidden checkpoints are left out, at either level.
    (tmp_path / "8863" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (50, 50)).save(tmp_path / "8863" / ".ipynb_checkpoints" / "x.png")
    (tmp_path / ".ipynb_checkpoints" / "0").mkdir(parents=True)
    samples, classes, layout = read_dataset(tmp_path)
    assert layout == "idc" and classes == ["IDC-negative", "IDC-positive"]
    assert sorted((s.group, s.label) for s in samples) == [
        ("8863", 0),
        ("8863", 1),
        ("9036", 0),
        ("9036", 1),
    ]
    # The Kaggle archive's second copy of every patient, one level down, is refused by name.
    (tmp_path / "IDC_regular_ps50_idx5" / "8863" / "0").mkdir(parents=True)
    with pytest.raises(ValueError, match="IDC_regular_ps50_idx5: IDC folders hold"):
        read_dataset(tmp_path)


def test_crops_of_one_source_image_stay_in_one_fold(tmp_path):
    # BreakHis-style crops: <source>_<n>. Grouped by file, folds put crops of one slide image
    # on both sides of the split.
    for cls, sources in (("benign", ["SOB_B_A_14-1AB", "SOB_B_F_14-2"]), ("malignant", ["M_3"])):
        (tmp_path / cls).mkdir()
        for source in sources:
            for i in range(4):
                Image.new("RGB", (12, 12)).save(tmp_path / cls / f"{source}_{i}.png")
    samples, _, _ = read_dataset(tmp_path)
    assert {s.group for s in samples} == {"SOB_B_A_14-1AB", "SOB_B_F_14-2", "M_3"}
    for train, val in kfold_by_group(samples, 3):
        assert not {s.group for s in train} & {s.group for s in val}
    assert source_image("patch0000004") == "patch0000004" and source_image("A03_0_11") == "A03_0"


@needs_data
def test_real_idc_readers_and_patient_folds():
    samples, names = read_idc(DATA / "idc")
    assert len(samples) == 8958
    assert len({s.group for s in samples}) == 237
    assert names == ["IDC-negative", "IDC-positive"]
    folds = kfold_by_group(samples, 5, seed=0)
    held = [{s.group for s in val} for _, val in folds]
    assert sum(len(h) for h in held) == 237
    assert len(set().union(*held)) == 237  # every patient validates exactly once
    for train, val in folds:
        assert not {s.group for s in train} & {s.group for s in val}


@needs_data
def test_real_class_folders_breakhis():
    samples, classes = read_class_folders(DATA / "breakhis-crops")
    assert classes == ["benign", "malignant"]
    assert Counter(s.label for s in samples) == {0: 30, 1: 48}
    assert len({s.group for s in samples}) == 13  # the slide images the crops were cut from
    assert load_image(samples[0].path).shape == (224, 224, 3)


@needs_data
def test_patches_from_a_bach_tile_and_its_mask():
    tile = load_image(DATA / "bach-a03" / "tiles" / "A03_8_1.png")
    mask = np.asarray(Image.open(DATA / "bach-a03" / "tiles" / "A03_8_1_mask.png"))
    patches = extract_patches(tile, mask, patch_size=200, stride=100, min_fraction=0.6)
    assert patches
    assert {p.label for p in patches} <= {0, 1, 2, 3}
    assert 3 in {p.label for p in patches}  # A03_8 holds invasive carcinoma
    for p in patches:
        window = mask[p.y : p.y + 200, p.x : p.x + 200]
        assert p.image.shape == (200, 200, 3)
        assert (window == p.label).mean() >= 0.6
    with pytest.raises(ValueError, match="differ in size"):
        extract_patches(tile, mask[:10], 200)


def test_a_decoded_dataset_is_cached_and_the_cache_follows_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("LRAN_CACHE_DIR", str(tmp_path / "cache"))
    for label in ("0", "1"):
        d = tmp_path / "data" / "p1" / label
        d.mkdir(parents=True)
        Image.new("RGB", (50, 50), (int(label) * 200, 10, 10)).save(d / "a.png")
    samples, _ = read_idc(tmp_path / "data")
    first = PatchDataset(samples, 50, native=50, cache=True)
    (cached,) = (tmp_path / "cache").glob("*.npz")
    again = PatchDataset(samples, 50, native=50, cache=True)
    assert torch.equal(first.images, again.images) and again.labels == [0, 1]
    # A changed file is a new key: decoded again, not read from the old cache.
    Image.new("RGB", (50, 50), (0, 0, 255)).save(samples[0].path)
    changed = PatchDataset(samples, 50, native=50, cache=True)
    assert changed.images[0, :, 0, 0].tolist() == [0, 0, 255]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2 and cached.exists()
