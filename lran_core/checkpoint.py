"""Checkpoints as safetensors with JSON metadata; loading never unpickles anything.

A file holds the state dict (floating tensors in fp16 or fp32) and one metadata entry,
``lran_meta``: the variant, its builder options, class names, input size, normalisation,
microns per pixel of the training data, a description of that data and its metrics.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .models import MODELS, LRANClassifier, ModelMeta, build_model

FORMAT = "lran-review/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"


class NoWeightsError(FileNotFoundError):
    """No trained weights are installed under the name asked for."""


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or its metadata and tensors disagree."""


def models_dir() -> Path:
    """Folder of model sets: ``$LRAN_MODELS_DIR`` or the weights shipped in the package."""
    return Path(os.environ.get("LRAN_MODELS_DIR") or WEIGHTS_DIR)


def save_checkpoint(
    model: LRANClassifier,
    path: str | Path,
    *,
    class_names: list[str] | None = None,
    class_folders: list[str] | None = None,
    input_size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    mpp: float | None = None,
    native_size: int | None = None,
    data_description: str | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Writes ``model`` to ``path`` (safetensors). Keyword arguments update ``model.meta`` first.

    ``half`` stores floating tensors as fp16 (half the size; outputs change by ~1e-3).
    """
    meta = model.meta
    for key, value in {
        "class_names": class_names,
        "class_folders": class_folders,
        "input_size": input_size,
        "mean": mean,
        "std": std,
        "mpp": mpp,
        "native_size": native_size,
        "data": data_description,
        "metrics": metrics,
    }.items():
        if value is not None:
            setattr(meta, key, value)
    if len(meta.class_names) != model.fc.out_features:
        raise ValueError(
            f"{len(meta.class_names)} class names for a model with {model.fc.out_features} outputs"
        )
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        tensors[name] = (t.half() if half and t.is_floating_point() else t).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors, str(path), metadata={"format": FORMAT, "lran_meta": json.dumps(asdict(meta))}
    )
    return path


def read_meta(path: str | Path) -> ModelMeta:
    """Reads only the metadata of a checkpoint."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    if raw.get("format") != FORMAT or "lran_meta" not in raw:
        raise CheckpointError(f"{path}: no {FORMAT} metadata (format={raw.get('format')!r})")
    fields = json.loads(raw["lran_meta"])
    fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
    return ModelMeta(**fields)


def resolve(path_or_name: str | Path) -> Path:
    """A file path as given, or a shipped name such as ``idc/resnet18-lran``."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    named = models_dir() / f"{path_or_name}.safetensors"
    if named.is_file():
        return named
    sets = ", ".join(list_model_sets()) or "none"
    raise NoWeightsError(
        f"no checkpoint {str(path_or_name)!r}: not a file, and not a model in {models_dir()} "
        f"(installed sets: {sets})"
    )


def load_model(path_or_name: str | Path, device: str | torch.device = "cpu") -> LRANClassifier:
    """Restores a model in eval mode from a file or a shipped name (``idc/resnet18-lran``).

    Refuses (CheckpointError) a file whose metadata and tensors disagree, saying what disagrees.
    """
    path = resolve(path_or_name)
    meta = read_meta(path)
    if meta.variant not in MODELS:
        raise CheckpointError(f"{path}: unknown variant {meta.variant!r} in metadata")
    options = {k: v for k, v in meta.options.items() if v is not None}
    model = build_model(meta.variant, num_classes=len(meta.class_names), **options)
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    problems = []
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing:
        problems.append(
            f"tensors missing for {meta.variant}: {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    if extra:
        problems.append(
            f"tensors not in {meta.variant}: {', '.join(extra[:5])}"
            + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        )
    for key in sorted(set(expected) & set(stored)):
        if expected[key].shape != stored[key].shape:
            problems.append(
                f"{key}: metadata gives shape {tuple(expected[key].shape)}, "
                f"file holds {tuple(stored[key].shape)}"
            )
    if problems:
        raise CheckpointError(f"{path}: metadata and tensors disagree: " + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in stored.items()})
    model.meta = meta
    return model.to(device).eval()


def list_model_sets() -> list[str]:
    """Installed model sets: sub-folders of :func:`models_dir` that hold checkpoints."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.safetensors")))


def load_model_set(
    name: str = "idc", device: str | torch.device = "cpu"
) -> dict[str, LRANClassifier]:
    """Loads every checkpoint of a set, keyed by variant, in registry order (base, RAN, LRAN)."""
    folder = models_dir() / name
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        raise NoWeightsError(
            f"no trained weights are installed for model set {name!r} (looked in {folder}). "
            "Train them with `python -m lran_core.train` or set LRAN_MODELS_DIR."
        )
    models = [load_model(f, device) for f in files]
    models.sort(key=lambda m: MODELS.index(m.variant))
    return {m.variant: m for m in models}
