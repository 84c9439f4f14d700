"""Untrusted input is refused with a one-line reason: crafted checkpoints (metadata, options,
weights), TIFF resolution tags, multi-page TIFFs, and the training and evaluation CLIs."""

import io
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, TiffImagePlugin
from safetensors.torch import save_file

from lran_core import CheckpointError, build_model, load_model, save_checkpoint
from lran_core.checkpoint import WEIGHTS_DIR, parse_meta, read_meta
from lran_core.data import (
    ImageReadError,
    MultiPageWarning,
    describe_image,
    load_image,
    read_mpp,
)
from lran_core.evaluate import main as evaluate_main
from lran_core.evaluate import write_report
from lran_core.metrics import compute_metrics
from lran_core.train import main as train_main

FORMAT = "lran-review/1"


def _meta(**changes):
    """Valid metadata of a two-class resnet18 (base), changed as given."""
    meta = {
        "variant": "resnet18",
        "options": {"cut": None, "widths": [16, 32, 64, 160, 256], "decoder_levels": 2},
        "class_names": ["neg", "pos"],
        "class_folders": ["0", "1"],
        "input_size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "mpp": 4.0,
        "native_size": 50,
        "data": "synthetic",
        "metrics": {},
    }
    meta.update(changes)
    return meta


def _write(path: Path, meta, tensors=None) -> Path:
    """A safetensors file with ``meta`` (a dict is JSON-encoded, a str is stored as it is)."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors or {"w": torch.zeros(1)}, str(path), {"format": FORMAT, "lran_meta": text})
    return path


@pytest.fixture(scope="module")
def base_tensors():
    """The state dict of a two-class resnet18 (the base variant: the smallest model)."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=2)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _refused(path: Path, *fragments: str) -> str:
    """Asserts load_model refuses ``path`` with a one-line message naming it and ``fragments``."""
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------------------------
# Checkpoint metadata


def test_metadata_that_is_not_json_or_not_an_object_is_refused(tmp_path):
    _refused(_write(tmp_path / "a.safetensors", "{not json"), "metadata 'lran_meta' is not JSON")
    _refused(
        _write(tmp_path / "b.safetensors", "[1, 2]"),
        "metadata 'lran_meta' is not a JSON object (got list)",
    )
    _refused(_write(tmp_path / "c.safetensors", "[" * 100_000), "is not JSON")


def test_unknown_and_missing_fields_are_named(tmp_path):
    _refused(
        _write(tmp_path / "u.safetensors", _meta(colour="red")),
        "unknown metadata field(s) 'colour'",
        "known: variant, options, class_names",
    )
    meta = _meta()
    del meta["class_names"], meta["options"]
    _refused(
        _write(tmp_path / "m.safetensors", meta), "metadata field(s) options, class_names missing"
    )


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("variant", "vgg16", "is 'vgg16', not a known model (resnet18, resnet18-ran"),
        ("variant", 3, "is 3, not a known model"),
        ("class_names", [], "must be a list of 2 to 1000 strings, got a list of 0"),
        ("class_names", ["only"], "must be a list of 2 to 1000 strings, got a list of 1"),
        ("class_names", "neg,pos", "must be a list of 2 to 1000 strings, got 'neg,pos'"),
        ("class_names", [f"c{i}" for i in range(1001)], "got a list of 1001"),
        ("class_names", ["neg", "neg"], "has duplicates: 'neg'"),
        (
            "class_names",
            ["neg", ""],
            "non-blank printable strings of at most 200 characters, got ''",
        ),
        ("class_names", ["neg", "  "], "got '  '"),
        ("class_names", ["neg", 1], "got 1"),
        ("class_names", ["neg", "p\nos"], "got 'p\\nos'"),
        ("class_names", ["neg", "x" * 201], "of at most 200 characters"),
        ("class_folders", ["0", "1", "2"], "has 3 entries for 2 class names"),
        ("class_folders", "01", "must be a list of 2 to 1000 strings, got '01'"),
        ("input_size", 100000, "must be an int in [16, 2048], got 100000"),
        ("input_size", 8, "must be an int in [16, 2048], got 8"),
        ("input_size", "128", "got '128'"),
        ("input_size", 128.0, "got 128.0"),
        ("input_size", True, "got True"),
        ("input_size", None, "got None"),
        ("mean", [0.5], "must be three finite numbers in [0, 1] (one per RGB channel), got [0.5]"),
        ("mean", [NAN, 0.5, 0.5], "got [nan, 0.5, 0.5]"),
        ("mean", [0.5, 0.5, 0.5, 0.5], "got [0.5, 0.5, 0.5, 0.5]"),
        ("mean", [0.5, 0.5, 7.0], "got [0.5, 0.5, 7.0]"),
        ("mean", 0.5, "got 0.5"),
        ("std", [0.25, 0.0, 0.25], "must be three finite numbers in [0.001, 1]"),
        ("std", [0.25, 0.25, INF], "got [0.25, 0.25, inf]"),
        ("std", [0.25, -0.25, 0.25], "got [0.25, -0.25, 0.25]"),
        ("std", [0.25, "0.25", 0.25], "got [0.25, '0.25', 0.25]"),
        ("mpp", 0, "must be null or a number in (0, 100], got 0"),
        ("mpp", -4.0, "got -4.0"),
        ("mpp", INF, "got inf"),
        ("mpp", NAN, "got nan"),
        ("mpp", 500, "got 500"),
        ("mpp", "4", "got '4'"),
        ("native_size", 0, "must be an int in [1, 4096], got 0"),
        ("native_size", 5000, "got 5000"),
        ("native_size", 50.5, "got 50.5"),
        ("data", 5, "must be a string, got 5"),
        ("metrics", [1], "must be a JSON object, got [1]"),
        ("options", [], "must be a JSON object, got []"),
        ("options", {"depth": 3}, "has unknown option(s) 'depth' (known: cut, widths"),
        ("options", {"widths": [16, 100_000]}, "widths must be 1 to 8 ints in [1, 1024]"),
        ("options", {"widths": []}, "widths must be 1 to 8 ints"),
        ("options", {"widths": [16, True]}, "got [16, True]"),
        ("options", {"decoder_levels": 0}, "decoder_levels must be an int in [1, 8], got 0"),
        ("options", {"padding_mode": "circular"}, "padding_mode must be one of zeros, reflect"),
        ("options", {"cut": 5}, "cut must be null or a layer name, got 5"),
    ],
)
def test_each_bad_field_is_refused_naming_file_and_field(tmp_path, field, value, reason):
    path = _write(tmp_path / "bad.safetensors", _meta(**{field: value}))
    with pytest.raises(CheckpointError) as info:
        read_meta(path)
    assert str(info.value) == str(_refused(path))
    message = str(info.value)
    assert message.startswith(f"{path}: metadata field {field!r} ") and reason in message


def test_options_the_builder_rejects_are_refused(tmp_path, base_tensors):
    path = _write(tmp_path / "cut.safetensors", _meta(options={"cut": "layer9"}), base_tensors)
    _refused(
        path,
        "metadata field 'options' cannot build resnet18: resnet18 cut must be one of",
        "'layer9'",
    )
    levels = _meta(variant="resnet18-lran", options={"widths": [8, 16], "decoder_levels": 5})
    _refused(
        _write(tmp_path / "levels.safetensors", levels, base_tensors),
        "cannot build resnet18-lran: decoder_levels must be in 1..2, got 5",
    )


def test_edge_values_and_defaults_are_accepted():
    meta = parse_meta(
        _meta(input_size=2048, mpp=100, native_size=4096, std=[1, 1e-3, 0.5], mean=[0, 1, 0]),
        "x",
    )
    assert (meta.input_size, meta.mpp, meta.native_size) == (2048, 100.0, 4096)
    assert meta.std == (1.0, 1e-3, 0.5) and meta.mean == (0.0, 1.0, 0.0)
    assert isinstance(meta.mpp, float)
    bare = parse_meta({"variant": "resnet18", "options": {}, "class_names": ["a", "b"]}, "x")
    assert bare.class_folders is None and bare.mpp is None and bare.native_size is None
    assert bare.input_size == 128 and bare.mean == (0.5, 0.5, 0.5) and bare.data == ""
    assert parse_meta(_meta(mpp=None, native_size=None, class_folders=None), "x").mpp is None


def test_non_finite_weights_are_refused_naming_the_tensors(tmp_path, base_tensors):
    tensors = dict(base_tensors)
    tensors["fc.weight"] = tensors["fc.weight"].clone()
    tensors["fc.weight"][0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    tensors["fc.bias"] = torch.tensor([0.0, float("nan")])
    path = _write(tmp_path / "nan.safetensors", _meta(), tensors)
    _refused(
        path, "non-finite weights (NaN or inf) in tensor fc.bias (1 of 2), fc.weight (3 of 512)"
    )
    half = {k: v.half() if v.is_floating_point() else v for k, v in base_tensors.items()}
    half["features.0.weight"] = half["features.0.weight"].clone()
    half["features.0.weight"][0, 0, 0, 0] = float("inf")  # fp16 overflow looks like this
    _refused(_write(tmp_path / "inf16.safetensors", _meta(), half), "features.0.weight (1 of")
    eight = dict(base_tensors)
    eight["fc.bias"] = torch.tensor([0.0, float("nan")]).to(torch.float8_e4m3fn)
    _refused(_write(tmp_path / "nan8.safetensors", _meta(), eight), "tensor fc.bias (1 of 2)")


def test_shapes_and_dtypes_that_disagree_are_still_named(tmp_path, base_tensors):
    tensors = dict(base_tensors)
    tensors["fc.weight"] = torch.zeros(3, 256)
    tensors["fc.bias"] = torch.zeros(2, dtype=torch.int32)
    _refused(
        _write(tmp_path / "shape.safetensors", _meta(), tensors),
        "metadata and tensors disagree: fc.bias: expected torch.float32, file holds torch.int32",
        "fc.weight: metadata gives shape (2, 256), file holds (3, 256)",
    )


def test_a_good_crafted_checkpoint_loads(tmp_path, base_tensors):
    model = load_model(_write(tmp_path / "good.safetensors", _meta(), base_tensors))
    assert model.meta.class_names == ["neg", "pos"] and model.meta.mean == (0.5, 0.5, 0.5)
    assert model.meta.mpp == 4.0 and model.meta.class_folders == ["0", "1"]


def test_old_checkpoints_without_newer_fields_load_with_defaults(tmp_path, base_tensors):
    # Written before class_folders and padding_mode existed (as the first shipped IDC set was).
    meta = _meta()
    for key in ("class_folders", "mpp", "native_size", "input_size", "data", "metrics"):
        del meta[key]
    assert "padding_mode" not in meta["options"]
    model = load_model(_write(tmp_path / "old.safetensors", meta, base_tensors))
    assert model.meta.class_folders is None and model.meta.mpp is None
    assert model.meta.input_size == 128 and model.meta.metrics == {}
    assert model.features[0].padding_mode == "zeros"


# Shipped set -> (classes, µm/px and side of its training patches, input side).
SHIPPED = {
    "idc": (["IDC-negative", "IDC-positive"], 4.0, 50, 128),
    "pcam": (["no tumour", "metastasis"], 0.97, 96, 96),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_checkpoints_load_with_their_recipe(name):
    if not (WEIGHTS_DIR / name).is_dir():
        pytest.skip(f"no shipped {name} weights")
    classes, mpp, native, size = SHIPPED[name]
    files = sorted((WEIGHTS_DIR / name).glob("*.safetensors"))
    assert [f.stem for f in files] == ["resnet18-lran", "resnet18-ran", "resnet18"]
    for path in files:
        meta = read_meta(path)
        assert meta.options["padding_mode"] == "reflect" and meta.input_size == size
        assert meta.class_names == classes and meta.mpp == mpp
    model = load_model(files[0])
    assert model.meta.native_size == native and model.features[0].padding_mode == "reflect"


def test_save_refuses_metadata_the_loader_would_refuse(tmp_path):
    model = build_model("resnet18", num_classes=2)
    path = tmp_path / "small.safetensors"
    with pytest.raises(
        CheckpointError, match=r"'input_size' must be an int in \[16, 2048\], got 8"
    ):
        save_checkpoint(model, path, class_names=["a", "b"], input_size=8)
    assert not path.exists()
    with pytest.raises(CheckpointError, match=r"'mean' must be three finite numbers.*nan"):
        save_checkpoint(model, path, input_size=32, mean=(0.5, float("nan"), 0.5))
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Resolution tags


def _tiff_with_resolution(value: float, unit: int = 3, double: bool = True) -> bytes:
    """A TIFF whose X/YResolution are ``value`` (stored as DOUBLE, so inf and NaN survive)."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag in (282, 283):
        ifd[tag] = value
        if double:
            ifd.tagtype[tag] = 12
    ifd[296] = unit
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="TIFF", tiffinfo=ifd)
    return buf.getvalue()


@pytest.mark.parametrize("value", [INF, -INF, NAN, 0.0, -300.0, 1e-310])
def test_non_finite_or_non_positive_resolution_gives_unknown_mpp(value):
    data = _tiff_with_resolution(value)
    tag = Image.open(io.BytesIO(data)).tag_v2[282]
    assert float(tag) == value or math.isnan(value)  # the crafted tag survived the writer
    assert read_mpp(data) is None


def test_rational_resolution_with_zero_denominator_gives_unknown_mpp():
    data = _tiff_with_resolution(INF, double=False)  # PIL writes inf as the rational 1/0
    assert math.isnan(float(Image.open(io.BytesIO(data)).tag_v2[282]))
    assert read_mpp(data) is None


def test_resolution_units_other_than_inch_and_cm_give_unknown_mpp():
    assert read_mpp(_tiff_with_resolution(20000.0, unit=3)) == pytest.approx(0.5)  # px/cm
    assert read_mpp(_tiff_with_resolution(50800.0, unit=2)) == pytest.approx(0.5)  # px/inch
    assert read_mpp(_tiff_with_resolution(20000.0, unit=1)) is None  # no absolute unit
    assert read_mpp(_tiff_with_resolution(20000.0, unit=4)) is None  # not a TIFF unit


def test_png_dpi_still_gives_mpp():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG", dpi=(25400, 25400))
    assert read_mpp(buf.getvalue()) == pytest.approx(1.0)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG", dpi=(72, 72))
    assert read_mpp(buf.getvalue()) is None  # a screen default, not a scanner's resolution


@pytest.mark.parametrize("dpi", [72, 96, 300, 600, 1000])
def test_a_tools_default_dpi_is_no_microscope_scale(dpi: int) -> None:
    # 72 dpi read as 352.8 µm/px made the 15 µm pointing-game tolerance 0.04 px.
    assert read_mpp(_tiff_with_resolution(float(dpi), unit=2)) is None
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, format=fmt, dpi=(dpi, dpi))
        assert read_mpp(buf.getvalue()) is None, fmt
    # The coarsest tagged scale taken: 1000 dpi is 25.4 µm/px, a little finer is kept.
    assert read_mpp(_tiff_with_resolution(1100.0, unit=2)) == pytest.approx(25400 / 1100)


# ---------------------------------------------------------------------------------------------
# Multi-page TIFF


def _three_page_tiff() -> bytes:
    pages = [Image.new("RGB", (20, 16), colour) for colour in ("red", "blue", "green")]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def test_multi_page_tiff_decodes_page_1_and_says_so(tmp_path):
    data = _three_page_tiff()
    with pytest.warns(MultiPageWarning, match=r"^scan\.tif: 3 pages; page 1 of 3 is used$"):
        rgb = load_image(data, name="scan.tif")
    assert rgb.shape == (16, 20, 3) and rgb[0, 0].tolist() == [255, 0, 0]  # page 1 is red
    info = describe_image(data, name="scan.tif")
    assert (info.pages, info.width, info.height, info.mode, info.format) == (
        3,
        20,
        16,
        "RGB",
        "TIFF",
    )
    assert info.multi_page
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path, np.stack([np.full((16, 16, 3), v, np.uint8) for v in (10, 20)]), photometric="rgb"
    )
    with pytest.warns(MultiPageWarning, match=re.escape(f"{path}: 2 pages; page 1 of 2 is used")):
        assert load_image(path)[0, 0].tolist() == [10, 10, 10]
    assert describe_image(path).pages == 2


def test_single_page_files_give_no_warning():
    buf = io.BytesIO()
    Image.new("RGB", (20, 16), "red").save(buf, format="TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultiPageWarning)
        assert load_image(buf.getvalue())[0, 0].tolist() == [255, 0, 0]
    info = describe_image(buf.getvalue())
    assert info.pages == 1 and not info.multi_page


@pytest.mark.filterwarnings("ignore:Truncated File Read")  # PIL's, for the cut-off file
def test_a_broken_later_page_still_counts_and_page_1_is_used():
    buf = io.BytesIO()
    tifffile.imwrite(
        buf, np.stack([np.full((16, 16, 3), v, np.uint8) for v in (10, 20, 30)]), photometric="rgb"
    )
    data = buf.getvalue()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        second = tif.pages[1].offset
    cut = data[: second + 4]  # page 2's header is cut off
    with pytest.warns(MultiPageWarning, match="2 pages; page 1 of 2 is used"):
        assert load_image(cut, name="cut.tif")[0, 0].tolist() == [10, 10, 10]
    assert describe_image(cut).pages == 2
    with pytest.raises(ImageReadError, match=r"^cut\.tif: "):
        describe_image(data[:100], name="cut.tif")


# ---------------------------------------------------------------------------------------------
# Command lines


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A class-folder dataset (neg, pos: 2 images each), a checkpoint for it, a bad folder."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for cls in ("neg", "pos"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                root / "data" / cls / f"{i}.png"
            )
    (root / "other" / "a").mkdir(parents=True)
    (root / "other" / "b").mkdir()
    for cls in ("a", "b"):
        Image.new("RGB", (32, 32)).save(root / "other" / cls / "x.png")
    (root / "one" / "only").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "one" / "only" / "x.png")
    torch.manual_seed(0)
    save_checkpoint(
        build_model("resnet18", num_classes=2),
        root / "model.safetensors",
        class_names=["neg", "pos"],
        input_size=32,
        half=False,
    )
    (root / "junk.safetensors").write_bytes(b"\x00" * 64)
    return root


def _cli_error(capsys, main, argv, usage: bool = False) -> str:
    """Runs a CLI that must refuse its input: exit status 2, one line ``error: ...`` on stderr
    (with ``usage``, argparse's usage lines first and ``<prog>: error: ...`` last)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if usage:
        assert lines[0].startswith("usage: ") and ": error: " in lines[-1], err
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[-1]


def _evaluate(root: Path, model: str, data: str, *extra: str) -> list[str]:
    return ["--model", model, "--data", str(root / data), "--json", str(root / "e.json"), *extra]


def test_evaluate_succeeds_and_returns_results(folders):
    results = evaluate_main(_evaluate(folders, str(folders / "model.safetensors"), "data"))
    assert results["n"] == 4 and results["class_names"] == ["neg", "pos"]
    assert json.loads((folders / "e.json").read_text())["n"] == 4


def test_evaluate_refuses_bad_input_in_one_line(capsys, folders, tmp_path):
    model = str(folders / "model.safetensors")
    junk = folders / "junk.safetensors"
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, str(junk), "data"))
    assert line.startswith(f"error: {junk}: not a readable safetensors file")
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, "nowhere/resnet18", "data"))
    assert line.startswith("error: no checkpoint 'nowhere/resnet18': not a file")
    bad = _write(tmp_path / "bad.safetensors", _meta(input_size=100000))
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, str(bad), "data"))
    assert line == (
        f"error: {bad}: metadata field 'input_size' must be an int in [16, 2048], got 100000"
    )
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, model, "absent"))
    assert line == f"error: {folders / 'absent'}: no such data folder"
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, model, "one"))
    assert line == (
        f"error: {folders / 'one'}: need at least two class folders with images, found ['only']"
    )
    line = _cli_error(capsys, evaluate_main, _evaluate(folders, model, "other"))
    assert line == (
        f"error: {folders / 'other'}: classes ['a', 'b'] differ from the model's ['neg', 'pos']"
    )
    line = _cli_error(
        capsys, evaluate_main, _evaluate(folders, model, "data", "--folds", "2", "--fold", "-1")
    )
    assert line == "error: --fold -1 is not one of the 2 folds (0 to 1)"
    # Without folds, a fold would be ignored and the whole set evaluated.
    for extra in (["--fold", "1"], ["--seed", "3"], ["--folds", "1", "--fold", "0"]):
        line = _cli_error(capsys, evaluate_main, _evaluate(folders, model, "data", *extra))
        assert line == "error: --fold and --seed need --folds 2 or more"


def test_a_report_of_a_set_of_one_class_says_n_a(tmp_path):
    # A small fold may hold one class: no balanced accuracy and no AUC, written as such.
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]])
    results = compute_metrics([0, 0, 0], probs, ["neg", "pos"])
    assert results["balanced_accuracy"] is None and results["auc"] is None
    report = write_report({**results, "model": "m", "data": "d"}, tmp_path / "r.html")
    assert "balanced n\\u002fa, AUC n\\u002fa" in report.read_text()  # "/" escaped in JSON


def _train(root: Path, data: str, out: Path, *extra: str) -> list[str]:
    return ["--data", str(root / data), "--out", str(out), "--no-progress", *extra]


def test_train_refuses_bad_input_in_one_line(capsys, folders, tmp_path):
    out = tmp_path / "run"
    line = _cli_error(capsys, train_main, _train(folders, "absent", out))
    assert line == f"error: {folders / 'absent'}: no such data folder"
    line = _cli_error(capsys, train_main, _train(folders, "one", out))
    assert "need at least two class folders with images" in line
    line = _cli_error(capsys, train_main, _train(folders, "data", out, "--input-size", "8"))
    assert line == (
        "error: lran-train options: metadata field 'input_size' must be an int in [16, 2048], got 8"
    )
    line = _cli_error(capsys, train_main, _train(folders, "data", out, "--mpp", "0"))
    assert "metadata field 'mpp' must be null or a number in (0, 100], got 0.0" in line
    line = _cli_error(capsys, train_main, _train(folders, "data", out, "--class-names", "a,,b"))
    assert "metadata field 'class_names' entries must be non-blank" in line
    line = _cli_error(capsys, train_main, _train(folders, "data", out, "--fold", "5"))
    assert line == "error: --fold 5 is not one of the 5 folds (0 to 4)"
    line = _cli_error(
        capsys,
        train_main,
        _train(folders, "data", out, "--folds", "1", "--class-names", "a,b,c"),
    )
    assert line == "error: 3 class names for 2 class folders"
    line = _cli_error(
        capsys,
        train_main,
        _train(folders, "data", out, "--folds", "1", "--val-data", str(folders / "other")),
    )
    assert line == f"error: {folders / 'other'}: classes ['a', 'b'] differ from ['neg', 'pos']"
    assert not out.exists()  # refused before anything was written


def _argparse_error(capsys, main, argv) -> str:
    """Runs a CLI whose option argparse must refuse: status 2, its usage, then the reason."""
    return _cli_error(capsys, main, argv, usage=True)


def test_option_values_that_cannot_work_are_refused_before_any_data_is_read(
    capsys, folders, tmp_path
):
    out = tmp_path / "run"
    train_bad = {
        ("--device", "gpu"): "must be cpu or cuda, got 'gpu'",
        ("--batch-size", "0"): "--batch-size: must be a whole number of at least 1",
        ("--lr-steps", "6"): "'6' is not epoch:lr",
    }
    if not torch.cuda.is_available():
        train_bad[("--device", "cuda")] = "this machine has no GPU that torch can use"
    for extra, reason in train_bad.items():
        assert reason in _argparse_error(capsys, train_main, _train(folders, "absent", out, *extra))
    model = str(folders / "model.safetensors")
    evaluate_bad = {
        ("--centre", "-1"): "--centre: must be a fraction between 0 and 1, got '-1'",
        ("--max-maps", "0"): "--max-maps: must be a whole number of at least 1",
        ("--batch-size", "x"): "--batch-size: must be a whole number of at least 1",
    }
    for extra, reason in evaluate_bad.items():
        line = _argparse_error(capsys, evaluate_main, _evaluate(folders, model, "absent", *extra))
        assert reason in line
    folder = ["--model", model, "--data", str(folders / "data"), "--json", str(tmp_path)]
    assert "is a folder: give a file name" in _argparse_error(capsys, evaluate_main, folder)
    assert not out.exists()
