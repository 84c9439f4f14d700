"""Training CLI: overfits a tiny synthetic set, is deterministic for a seed, resumes."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lran_core import load_model
from lran_core.evaluate import main as evaluate_main
from lran_core.train import lr_at
from lran_core.train import main as train_main


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """16 images per side of the split: class 'dark' is dim noise, 'striped' has bright stripes."""
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for cls in ("dark", "striped"):
        (root / cls).mkdir()
        for i in range(10):
            img = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            if cls == "striped":
                img[::4] = 250
                img[:, ::4] = 250
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


def _run(data, out, *extra):
    return train_main(
        [
            "--data",
            str(data),
            "--model",
            "resnet18-lran",
            "--out",
            str(out),
            "--input-size",
            "32",
            "--batch-size",
            "16",
            "--lr",
            "1e-3",
            "--lr-steps",
            "",
            "--folds",
            "5",
            "--no-progress",
            *extra,
        ]
    )


def _log(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_overfits_and_resumes(synthetic, tmp_path):
    out = tmp_path / "run"
    _run(synthetic, out, "--epochs", "6", "--batches-per-epoch", "4")
    log = _log(out)
    assert len(log) == 6
    assert log[-1]["train_loss"] < 0.5 * log[0]["train_loss"]
    assert log[-1]["train_accuracy"] == 1.0 and log[-1]["val_accuracy"] == 1.0
    best = load_model(out / "best.safetensors")
    assert best.meta.class_names == ["dark", "striped"] and best.meta.input_size == 32
    assert best.meta.metrics["validation"]["accuracy"] == 1.0
    _run(synthetic, out, "--epochs", "7", "--batches-per-epoch", "4", "--resume")
    assert [r["epoch"] for r in _log(out)] == [1, 2, 3, 4, 5, 6, 7]
    # A folder that holds a run is not started again by mistake, nor resumed as another run.
    again = tmp_path / "again"
    shutil.copytree(out, again)
    best = (again / "best.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        _run(synthetic, again, "--epochs", "1", "--batches-per-epoch", "1")
    with pytest.raises(SystemExit):
        _run(
            synthetic, again, "--epochs", "8", "--batches-per-epoch", "4", "--resume", "--seed", "3"
        )
    assert (again / "best.safetensors").read_bytes() == best and len(_log(again)) == 7
    # Started again on purpose, it logs its own epochs only.
    _run(synthetic, again, "--epochs", "1", "--batches-per-epoch", "1", "--overwrite")
    assert [r["epoch"] for r in _log(again)] == [1]
    # A restart stopped before its first epoch leaves nothing of the old run to resume.
    _run(synthetic, again, "--epochs", "0", "--overwrite", "--model", "resnet18")
    assert not (again / "state.safetensors").exists() and not (again / "best.safetensors").exists()
    # A run copied without its state (or finished elsewhere) cannot be resumed.
    copied = tmp_path / "copied"
    shutil.copytree(out, copied, ignore=shutil.ignore_patterns("state.safetensors"))
    with pytest.raises(SystemExit):
        _run(synthetic, copied, "--epochs", "8", "--batches-per-epoch", "4", "--resume")
    assert len(_log(copied)) == 7
    with pytest.raises(SystemExit):
        _run(synthetic, tmp_path / "run" / "metrics.jsonl", "--epochs", "1")
    results = evaluate_main(
        [
            "--model",
            str(out / "best.safetensors"),
            "--data",
            str(synthetic),
            "--json",
            str(tmp_path / "e.json"),
            "--report",
            str(tmp_path / "e.html"),
        ]
    )
    assert results["n"] == 20 and results["accuracy"] == 1.0 and results["auc"] == 1.0
    assert results["confusion"] == [[10, 0], [0, 10]]
    saved = json.loads((tmp_path / "e.json").read_text())
    assert {"accuracy", "balanced_accuracy", "auc", "confusion", "n"} <= set(saved)
    assert "plotly" in (tmp_path / "e.html").read_text()[:200000]


def test_same_seed_same_run(synthetic, tmp_path):
    for name in ("a", "b"):
        _run(synthetic, tmp_path / name, "--epochs", "1", "--batches-per-epoch", "2", "--seed", "7")
    timing = {"seconds", "images_per_second"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in _log(tmp_path / "a")]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in _log(tmp_path / "b")]
    a, b = (
        load_model(tmp_path / "a" / "last.safetensors"),
        load_model(tmp_path / "b" / "last.safetensors"),
    )
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_paper_schedule():
    steps = "10:1e-5,20:5e-6"
    assert [lr_at(e, 1e-4, steps) for e in (0, 9, 10, 19, 20, 49)] == [
        1e-4,
        1e-4,
        1e-5,
        1e-5,
        5e-6,
        5e-6,
    ]


def test_a_model_region_maps_would_refuse_is_said_so_when_trained(synthetic, tmp_path, capsys):
    # 48 px is 3 cells of 16 px: patches train, but region windows cannot be centred.
    _run(
        synthetic,
        tmp_path / "odd",
        "--epochs",
        "1",
        "--batches-per-epoch",
        "1",
        "--input-size",
        "48",
    )
    assert "warning: region maps will refuse this model" in capsys.readouterr().out
    _run(synthetic, tmp_path / "even", "--epochs", "1", "--batches-per-epoch", "1")
    assert "warning" not in capsys.readouterr().out


def test_evaluating_a_fold_the_model_trained_on_is_warned(synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    _run(synthetic, out, "--epochs", "1", "--batches-per-epoch", "1")
    base = ["--model", str(out / "best.safetensors"), "--data", str(synthetic), "--folds", "5"]
    for fold, warned in (("0", False), ("1", True)):
        capsys.readouterr()
        evaluate_main([*base, "--fold", fold, "--json", str(tmp_path / f"{fold}.json")])
        err = capsys.readouterr().err
        assert ("fold 1 of 5 holds patients it was trained on" in err) == warned, err
