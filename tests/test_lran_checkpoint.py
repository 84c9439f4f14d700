"""Checkpoints: round trip, metadata, refusal of disagreeing files, shipped names."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lran_core import (
    CheckpointError,
    NoWeightsError,
    build_model,
    list_model_sets,
    load_model,
    load_model_set,
    save_checkpoint,
)


def _model(name="resnet18-lran"):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3)
    # give batch norm non-trivial running statistics so they are part of the round trip
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64))
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _model()
    path = save_checkpoint(
        model,
        tmp_path / "m.safetensors",
        class_names=["a", "b", "c"],
        input_size=64,
        mean=(0.1, 0.2, 0.3),
        std=(0.4, 0.5, 0.6),
        mpp=4.0,
        native_size=50,
        data_description="synthetic",
        metrics={"accuracy": 0.5},
        half=False,
    )
    back = load_model(path)
    x = torch.randn(2, 3, 64, 64)
    a, b = model.explain(x), back.explain(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.cam, b.cam)
    assert all(torch.equal(g, h) for g, h in zip(a.gates, b.gates))
    assert back.meta.class_names == ["a", "b", "c"] and back.meta.input_size == 64
    assert back.meta.mean == (0.1, 0.2, 0.3) and back.meta.mpp == 4.0
    assert back.meta.native_size == 50
    assert back.meta.data == "synthetic" and back.meta.metrics == {"accuracy": 0.5}
    assert back.variant == "resnet18-lran" and not back.training


def test_fp16_checkpoint_is_half_the_size_and_close(tmp_path):
    model = _model("resnet18-ran")
    full = save_checkpoint(model, tmp_path / "f.safetensors", class_names=list("abc"), half=False)
    half = save_checkpoint(model, tmp_path / "h.safetensors", class_names=list("abc"))
    assert half.stat().st_size < 0.55 * full.stat().st_size
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x).softmax(-1), load_model(half)(x).softmax(-1), atol=1e-2)


def test_disagreeing_metadata_is_refused_with_reason(tmp_path):
    path = save_checkpoint(_model(), tmp_path / "m.safetensors", class_names=list("abc"))
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["lran_meta"])
    meta["variant"] = "resnet18-ran"
    bad = tmp_path / "variant.safetensors"
    save_file(tensors, str(bad), {"format": "lran-review/1", "lran_meta": json.dumps(meta)})
    with pytest.raises(
        CheckpointError, match=r"tensors not in resnet18-ran: attention_branch\.gates"
    ):
        load_model(bad)
    meta["variant"], meta["class_names"] = "resnet18-lran", ["a", "b"]
    bad2 = tmp_path / "classes.safetensors"
    save_file(tensors, str(bad2), {"format": "lran-review/1", "lran_meta": json.dumps(meta)})
    with pytest.raises(
        CheckpointError,
        match=r"fc.weight: metadata gives shape \(2, 256\), file "
        r"holds \(3, 256\)",
    ):
        load_model(bad2)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="no lran-review/1 metadata"):
        load_model(plain)
    with pytest.raises(NoWeightsError, match="no checkpoint"):
        load_model("nowhere/resnet18")


def test_model_sets_from_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LRAN_MODELS_DIR", str(tmp_path))
    assert list_model_sets() == []
    with pytest.raises(NoWeightsError, match="no trained weights are installed for model set"):
        load_model_set("idc")
    for name in ("resnet18-lran", "resnet18", "resnet18-ran"):
        save_checkpoint(
            build_model(name), tmp_path / "toy" / f"{name}.safetensors", class_names=["neg", "pos"]
        )
    assert list_model_sets() == ["toy"]
    models = load_model_set("toy")
    assert list(models) == ["resnet18", "resnet18-ran", "resnet18-lran"]
    assert load_model("toy/resnet18-ran").variant == "resnet18-ran"
