"""The region command (lran-review region): maps and scores as JSON, refusals, real BACH data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_region import BACH, VARIANTS, rgb, tiny

from lran_core import save_checkpoint
from review import modelsets
from review import region as command
from review.cli import main as cli
from review.region import main

# ---------------------------------------------------------------------------------------------
# Command line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("set")
    for i, name in enumerate(VARIANTS):
        model = tiny(name, i)
        save_checkpoint(
            model, folder / f"{name}.safetensors", half=False, class_names=["negative", "positive"]
        )
    return folder


def write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def label_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 10:40] = 3
    mask[40:50, 5:20] = 1
    return mask


def test_cli_writes_json_with_scores_and_pngs(tmp_path, checkpoints):
    image = write_png(tmp_path / "region.png", rgb(60, 64))
    mask = write_png(tmp_path / "region_mask.png", label_mask(60, 64))
    out = tmp_path / "out.json"
    code = main(
        [
            "--models",
            str(checkpoints),
            "--image",
            str(image),
            "--mpp",
            "4.5",
            "--mask",
            str(mask),
            "--json",
            str(out),
            "--png",
            str(tmp_path / "png"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["mpp"] == 4.5 and report["size"] == [64, 60]
    assert list(report["models"]) == list(VARIANTS)
    agreement_keys = {
        "pointing_game",
        "energy_pointing_game",
        "iou_50",
        "iou_mean",
        "dice_50",
        "dice_mean",
        "auroc",
        "tolerance_px",
        "tolerance_um",
    }
    for name, entry in report["models"].items():
        assert {"windows", "blocks", "seconds", "mpp", "scores"} <= set(entry)
        assert entry["mpp"] == 4.5 and entry["windows"] > 0
        scores = entry["scores"]
        # 15 um at 4.5 um/px.
        assert scores["cam"]["tolerance_um"] == 15.0
        assert scores["cam"]["tolerance_px"] == pytest.approx(15 / 4.5)
        assert 0 <= scores["auroc_tumour_2_3"] <= 1
        assert set(scores["cam"]) == agreement_keys
        if name == "resnet18":
            assert scores["attention"] is None
        else:
            assert set(scores["attention"]) == agreement_keys
    pngs = sorted(Path(p).name for p in report["png"])
    assert "region_resnet18-lran_attention.png" in pngs and "region_resnet18_cam.png" in pngs
    assert Image.open(tmp_path / "png" / "region_resnet18_prob1.png").size == (64, 60)


@pytest.mark.parametrize(
    ("mask", "reason"),
    [
        (label_mask(30, 64), "label mask is 64 x 30 px (width x height) but the image is 64 x 60"),
        (label_mask(60, 64) * 3, "values [9] outside the allowed [0, 1, 2, 3]"),
    ],
)
def test_cli_refuses_a_mask_of_another_size_or_unknown_values(
    tmp_path, checkpoints, capsys, mask, reason
):
    image = write_png(tmp_path / "region.png", rgb(60, 64))
    mask_path = write_png(tmp_path / "mask.png", mask)
    out = tmp_path / "out.json"
    code = main(
        [
            "--models",
            str(checkpoints),
            "--image",
            str(image),
            "--mpp",
            "4.5",
            "--mask",
            str(mask_path),
            "--json",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert reason in capsys.readouterr().err


def test_cli_needs_mpp_without_tags_and_reads_tiff_tags(tmp_path, checkpoints, capsys):
    png = write_png(tmp_path / "region.png", rgb(40, 40))
    assert (
        main(
            ["--models", str(checkpoints), "--image", str(png), "--json", str(tmp_path / "a.json")]
        )
        == 2
    )
    assert "give them with --mpp" in capsys.readouterr().err
    tiff = tmp_path / "region.tif"
    # 2500 pixels per cm = 4 um/px.
    Image.fromarray(rgb(40, 40)).save(tiff, resolution=2500.0, resolution_unit=3)
    out = tmp_path / "b.json"
    assert main(["--models", str(checkpoints), "--image", str(tiff), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mpp"] == pytest.approx(4.0) and report["mpp_source"] == "image resolution tags"


def test_cli_refuses_a_bad_tolerance_or_output_before_mapping(
    tmp_path, checkpoints, capsys, monkeypatch
):
    image = write_png(tmp_path / "region.png", rgb(40, 40))
    base = ["--models", str(checkpoints), "--image", str(image), "--mpp", "4"]
    for bad in ("-5", "nan", "inf"):
        with pytest.raises(SystemExit) as exit_:
            main([*base, "--tolerance-um", bad, "--json", str(tmp_path / "a.json")])
        assert exit_.value.code == 2
        assert "must be a finite number of µm, 0 or more" in capsys.readouterr().err
    # An output that cannot be written is refused before the (long) mapping, which never runs.
    monkeypatch.setattr(command, "map_region", lambda *a, **k: pytest.fail("mapped"))
    taken = write_png(tmp_path / "taken.png", rgb(4, 4))
    for outputs in (["--json", str(taken / "a.json")], ["--png", str(taken)]):
        assert main([*base, "--json", str(tmp_path / "b.json"), *outputs]) == 2
        assert "cannot write the output" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
    # Through lran-review, with the --db every other command takes (it was "invalid choice").
    with pytest.raises(SystemExit) as exit_:
        cli(["--db", "sqlite://", "region", *base, "--tolerance-um", "-5"])
    assert exit_.value.code == 2
    assert "must be a finite number of µm, 0 or more" in capsys.readouterr().err
    # Without --tolerance-um, the operator's LRAN_TOLERANCE_UM, as in the app; refused if bad.
    monkeypatch.setenv("LRAN_TOLERANCE_UM", "soon")
    assert main([*base, "--json", str(tmp_path / "c.json")]) == 2
    assert "LRAN_TOLERANCE_UM must be a number of µm" in capsys.readouterr().err


def test_cli_scores_with_the_operators_tolerance(tmp_path, checkpoints, monkeypatch):
    image = write_png(tmp_path / "region.png", rgb(60, 64))
    mask = write_png(tmp_path / "region_mask.png", label_mask(60, 64))
    monkeypatch.setenv("LRAN_TOLERANCE_UM", "30")
    out = tmp_path / "out.json"
    argv = ["--models", str(checkpoints), "--image", str(image), "--mpp", "4.5"]
    assert main([*argv, "--mask", str(mask), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())["models"]["resnet18"]["scores"]
    assert scores["cam"]["tolerance_um"] == 30.0
    assert scores["cam"]["tolerance_px"] == pytest.approx(30 / 4.5)


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.skipif(not BACH.is_dir(), reason=f"BACH regions not present at {BACH}")
def test_bach_invasive_region_with_shipped_models(tmp_path):
    out = tmp_path / "a03_8.json"
    code = main(
        [
            "--models",
            "idc",
            "--image",
            str(BACH / "A03_8.png"),
            "--mpp",
            "4.7",
            "--mask",
            str(BACH / "A03_8_mask.png"),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    # 500 px at 4.7 um/px is 1504 px at the models' input scale (200 um over 128 px): 94 cells
    # of 16 px, a 200 um window centred on each of their 95 x 95 corners.
    for entry in report["models"].values():
        assert entry["windows"] == 95 * 95 and entry["field_um"] == 200.0
        # The IDC models, tiled at the region's true scale, find the invasive carcinoma.
        assert entry["scores"]["auroc_tumour_2_3"] > 0.75


def test_a_model_set_with_a_broken_map_quality_file_is_refused_by_name(tmp_path, checkpoints):
    folder = tmp_path / "set"
    shutil.copytree(checkpoints, folder)
    (folder / modelsets.QUALITY_FILE).write_text("{not json")
    with pytest.raises(modelsets.CheckpointError, match=r"map-quality\.json: not readable JSON"):
        modelsets.load(folder)
    (folder / modelsets.QUALITY_FILE).write_text("[1, 2]")
    with pytest.raises(modelsets.CheckpointError, match="not a JSON object"):
        modelsets.load(folder)
