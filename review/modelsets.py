"""Model sets: the base network and its attention variants, trained together, loaded one way.

A set is named (a folder under :func:`lran_core.models_dir`, e.g. ``idc``), given as a folder of
checkpoints, or as checkpoint files. Its models are kept in registry order (base, RAN, LRAN).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lran_core import (
    CheckpointError,
    LRANClassifier,
    NoWeightsError,
    list_model_sets,
    load_model,
    models_dir,
)
from lran_core.models import MODELS, ModelMeta, display_name
from lran_core.region import field_of_view_um, native_size

__all__ = [
    "CheckpointError",
    "ModelSet",
    "NoWeightsError",
    "display_name",
    "folder",
    "installed",
    "load",
    "warm_up",
]

# Map-quality figures of a set's models (lran_core.evaluate --maps), beside its checkpoints.
QUALITY_FILE = "map-quality.json"


@dataclass(frozen=True)
class ModelSet:
    """The models of one set, by variant name in registry order, and where they came from.

    ``quality`` holds each variant's map-quality figures when the set ships them (empty
    otherwise).
    """

    name: str
    source: Path
    models: dict[str, LRANClassifier]
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def meta(self) -> ModelMeta:
        """The first model's metadata (the set's models share classes and resolution)."""
        return next(iter(self.models.values())).meta

    @property
    def class_names(self) -> list[str]:
        """The classes every model of the set predicts, in output order."""
        return list(self.meta.class_names)

    @property
    def patch_side(self) -> int:
        """Side in image pixels of the patches the models were trained on (IDC: 50)."""
        return max(native_size(m.meta) for m in self.models.values())

    def field_um(self) -> float:
        """Micrometres on a side that one patch of the set covers (raises RegionError when the
        checkpoints record no microns per pixel)."""
        return max(field_of_view_um(m.meta) for m in self.models.values())

    def title(self, variant: str) -> str:
        """Display name of one of the set's variants (``resnet18-ran`` -> "R-RAN")."""
        return display_name(variant)


def folder() -> Path:
    """The folder installed model sets are read from (``$LRAN_MODELS_DIR`` or the shipped
    weights), resolved."""
    return models_dir().resolve()


def warm_up(model_set: ModelSet, threads: int | None = None) -> None:
    """Sets torch's intra-op threads (when given) and runs every model once on a blank input:
    a model's first forward pass is several times slower than the next (kernel selection)."""
    if threads:
        torch.set_num_threads(threads)
    with torch.no_grad():
        for model in model_set.models.values():
            size = model.meta.input_size
            model.explain(torch.zeros(1, 3, size, size))


def installed() -> list[str]:
    """Names of the installed model sets (empty until trained weights are installed)."""
    return list_model_sets()


def _files(spec: str | Path | Sequence[Path]) -> tuple[str, Path, list[Path]]:
    if isinstance(spec, str | Path):
        folder = Path(spec)
        if not folder.is_dir():
            folder = models_dir() / str(spec)
            if not folder.is_dir():
                sets = ", ".join(installed()) or "none"
                raise NoWeightsError(
                    f"no model set {str(spec)!r}: not a folder, and not a set in {models_dir()} "
                    f"(installed sets: {sets})"
                )
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise NoWeightsError(
                f"no trained weights in {folder}: train them with `lran-train` or point "
                "LRAN_MODELS_DIR at a folder of model sets"
            )
        return folder.name, folder, files
    files = [Path(p) for p in spec]
    if not files:
        raise NoWeightsError("no checkpoint files given")
    return files[0].parent.name, files[0].parent, files


def load(spec: str | Path | Sequence[Path], device: str = "cpu") -> ModelSet:
    """Loads a model set: a set name (``idc``), a folder of checkpoints, or checkpoint files.

    Raises NoWeightsError when there are no checkpoints, CheckpointError (naming the file) when
    one cannot be loaded, two checkpoints are of the same variant or disagree on classes, or
    the set's map-quality.json is not a JSON object.
    """
    name, source, files = _files(spec)
    models: dict[str, LRANClassifier] = {}
    for path in files:
        model = load_model(path, device)
        if model.variant in models:
            raise CheckpointError(f"{path}: a second checkpoint of {model.variant} in the set")
        models[model.variant] = model
    classes = {tuple(m.meta.class_names) for m in models.values()}
    if len(classes) > 1:
        raise CheckpointError(f"{source}: the set's models disagree on classes {sorted(classes)}")
    ordered = {v: models[v] for v in MODELS if v in models}
    quality_path = source / QUALITY_FILE
    quality: dict[str, Any] = {}
    if quality_path.is_file():
        try:
            quality = json.loads(quality_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{quality_path}: not readable JSON ({err})") from err
        if not isinstance(quality, dict):
            raise CheckpointError(f"{quality_path}: not a JSON object of figures per model")
    return ModelSet(name=name, source=source, models=ordered, quality=quality)
