"""Checkpoints as safetensors with JSON metadata; loading never unpickles anything.

A file holds the state dict (floating tensors in fp16 or fp32) and one metadata entry,
``lran_meta``: the variant, its builder options, class names, input size, normalisation,
microns per pixel of the training data, a description of that data and its metrics.

Checkpoints are untrusted input (a department installs sets it did not train): everything read
from a file is validated (:func:`parse_meta`, finite weights) and every refusal is a
:class:`CheckpointError` whose one-line message names the file and the field or tensor.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .models import MODELS, LRANClassifier, ModelMeta, build_model
from .models.lran import PADDING_MODES

FORMAT = "lran-review/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"

# Bounds of what a checkpoint may claim. They are generous for real models and exist so that a
# crafted file cannot make the app allocate absurd inputs or show nonsense: no histology model
# needs more classes, larger inputs or coarser training data than this.
MAX_CLASSES = 1000
MAX_NAME_CHARS = 200
INPUT_SIZE_RANGE = (16, 2048)
NATIVE_SIZE_RANGE = (1, 4096)
MAX_MPP = 100.0  # µm/px; the same ceiling as lran_core.region.MAX_MPP
# ``std`` divides the input: below this the normalised input overflows reduced precision.
MIN_STD = 1e-3
# The builder's options (LRANClassifier's keyword arguments besides base/attention/classes).
OPTION_KEYS = ("cut", "widths", "decoder_levels", "padding_mode")
MAX_WIDTH = 1024
MAX_LEVELS = 8

_META_FIELDS = {f.name: f for f in fields(ModelMeta)}
_REQUIRED = ("variant", "options", "class_names")  # the fields of ModelMeta without defaults

# Makes the CheckpointError for a field and a reason (it knows the file).
_Bad = Callable[[str, str], "CheckpointError"]


class NoWeightsError(FileNotFoundError):
    """No trained weights are installed under the name asked for."""


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, its metadata invalid, or its metadata and tensors
    disagree; the one-line message names the file and what is wrong."""


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
    Raises CheckpointError, before writing anything, for metadata that :func:`load_model`
    would refuse (so no file is written that cannot be read back).
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
    path = Path(path)
    text = json.dumps(asdict(meta))
    # Checked as a reader will see it, after JSON (tuples become lists, NaN stays NaN).
    parse_meta(json.loads(text), path)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        tensors[name] = (t.half() if half and t.is_floating_point() else t).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": FORMAT, "lran_meta": text})
    return path


def read_meta(path: str | Path) -> ModelMeta:
    """Reads and validates only the metadata of a checkpoint (see :func:`parse_meta`).

    Raises CheckpointError for a file that is not safetensors, has no ``lran-review/1``
    metadata, or whose metadata is not valid JSON of a :class:`ModelMeta`.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({_plain(err)})") from err
    if raw.get("format") != FORMAT or "lran_meta" not in raw:
        raise CheckpointError(f"{path}: no {FORMAT} metadata (format={_show(raw.get('format'))})")
    try:
        fields_ = json.loads(raw["lran_meta"])
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly nested arrays
        raise CheckpointError(f"{path}: metadata 'lran_meta' is not JSON ({_plain(err)})") from err
    return parse_meta(fields_, path)


def parse_meta(raw: Any, source: str | Path) -> ModelMeta:
    """Validates decoded ``lran_meta`` JSON into a :class:`ModelMeta`.

    Rules (each failure is a CheckpointError naming ``source`` and the field):
    an object whose keys are ModelMeta's fields, with ``variant``, ``options`` and
    ``class_names`` present (absent optional fields take their defaults, so files written before
    ``class_folders`` or ``padding_mode`` existed still load); ``variant`` a known model;
    ``options`` an object with only :data:`OPTION_KEYS` (see :func:`_options`); ``class_names``
    2 to :data:`MAX_CLASSES` distinct, non-blank, printable strings of at most
    :data:`MAX_NAME_CHARS` characters; ``class_folders`` None or such a list of the same
    length; ``input_size`` an int in :data:`INPUT_SIZE_RANGE`; ``mean`` three finite numbers in
    [0, 1] and ``std`` three in [:data:`MIN_STD`, 1] (statistics of RGB in [0, 1]); ``mpp`` None
    or a finite number in (0, :data:`MAX_MPP`]; ``native_size`` None or an int in
    :data:`NATIVE_SIZE_RANGE`; ``data`` a string; ``metrics`` an object.
    """
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{source}: metadata 'lran_meta' is not a JSON object (got {type(raw).__name__})"
        )
    unknown = sorted(str(k) for k in raw if k not in _META_FIELDS)
    if unknown:
        raise CheckpointError(
            f"{source}: unknown metadata field(s) {', '.join(map(_show, unknown))} "
            f"(known: {', '.join(_META_FIELDS)})"
        )
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{source}: metadata field(s) {', '.join(missing)} missing")

    def bad(name: str, reason: str) -> CheckpointError:
        return CheckpointError(f"{source}: metadata field {name!r} {reason}")

    variant = raw["variant"]
    if not isinstance(variant, str) or variant not in MODELS:
        raise bad("variant", f"is {_show(variant)}, not a known model ({', '.join(MODELS)})")
    if not isinstance(raw.get("data", ""), str):
        raise bad("data", f"must be a string, got {_show(raw['data'])}")
    if not isinstance(raw.get("metrics", {}), dict):
        raise bad("metrics", f"must be a JSON object, got {_show(raw['metrics'])}")
    class_names = _names(raw["class_names"], "class_names", bad)
    class_folders = None
    if raw.get("class_folders") is not None:
        class_folders = _names(raw["class_folders"], "class_folders", bad)
        if len(class_folders) != len(class_names):
            raise bad(
                "class_folders",
                f"has {len(class_folders)} entries for {len(class_names)} class names",
            )
    out = ModelMeta(
        variant=variant,
        options=_options(raw["options"], bad),
        class_names=class_names,
        class_folders=class_folders,
        data=raw.get("data", ""),
        metrics=raw.get("metrics", {}),
    )
    if "input_size" in raw:
        out.input_size = _int(raw["input_size"], "input_size", INPUT_SIZE_RANGE, bad)
    if "mean" in raw:
        out.mean = _triple(raw["mean"], "mean", (0.0, 1.0), bad)
    if "std" in raw:
        out.std = _triple(raw["std"], "std", (MIN_STD, 1.0), bad)
    if raw.get("mpp") is not None:
        mpp = _number(raw["mpp"])
        if mpp is None or not 0 < mpp <= MAX_MPP:
            raise bad(
                "mpp", f"must be null or a number in (0, {MAX_MPP:g}], got {_show(raw['mpp'])}"
            )
        out.mpp = mpp
    if raw.get("native_size") is not None:
        out.native_size = _int(raw["native_size"], "native_size", NATIVE_SIZE_RANGE, bad)
    return out


def _options(value: Any, bad: _Bad) -> dict[str, Any]:
    """The builder's options: only :data:`OPTION_KEYS`; a null value means the default.

    ``cut`` a short string (the builder checks it names a layer of the base), ``widths`` 1 to
    :data:`MAX_LEVELS` ints in [1, :data:`MAX_WIDTH`] (bounded so that a file cannot make us
    build a huge network), ``decoder_levels`` an int in [1, :data:`MAX_LEVELS`] (the builder
    checks it against ``widths``), ``padding_mode`` one of PADDING_MODES.
    """
    if not isinstance(value, dict):
        raise bad("options", f"must be a JSON object, got {_show(value)}")
    unknown = sorted(str(k) for k in value if k not in OPTION_KEYS)
    if unknown:
        raise bad(
            "options",
            f"has unknown option(s) {', '.join(map(_show, unknown))} "
            f"(known: {', '.join(OPTION_KEYS)})",
        )
    cut, widths = value.get("cut"), value.get("widths")
    if cut is not None and not (isinstance(cut, str) and 0 < len(cut) <= 40):
        raise bad("options", f"cut must be null or a layer name, got {_show(cut)}")
    if widths is not None and not (
        isinstance(widths, list)
        and 1 <= len(widths) <= MAX_LEVELS
        and all(_is_int(w) and 1 <= w <= MAX_WIDTH for w in widths)
    ):
        raise bad(
            "options",
            f"widths must be 1 to {MAX_LEVELS} ints in [1, {MAX_WIDTH}], got {_show(widths)}",
        )
    levels = value.get("decoder_levels")
    if levels is not None and not (_is_int(levels) and 1 <= levels <= MAX_LEVELS):
        raise bad(
            "options", f"decoder_levels must be an int in [1, {MAX_LEVELS}], got {_show(levels)}"
        )
    padding = value.get("padding_mode")
    if padding is not None and padding not in PADDING_MODES:
        raise bad(
            "options",
            f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {_show(padding)}",
        )
    return dict(value)


def _names(value: Any, name: str, bad: _Bad) -> list[str]:
    """Class names or folders: they are shown to readers and matched against folders."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_CLASSES:
        got = f"a list of {len(value)}" if isinstance(value, list) else _show(value)
        raise bad(name, f"must be a list of 2 to {MAX_CLASSES} strings, got {got}")
    for item in value:
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > MAX_NAME_CHARS
            or not item.isprintable()
        ):
            raise bad(
                name,
                f"entries must be non-blank printable strings of at most {MAX_NAME_CHARS} "
                f"characters, got {_show(item)}",
            )
    if len(set(value)) != len(value):
        twice = sorted({v for v in value if value.count(v) > 1})
        raise bad(name, f"has duplicates: {', '.join(map(_show, twice))}")
    return list(value)


def _int(value: Any, name: str, bounds: tuple[int, int], bad: _Bad) -> int:
    if not _is_int(value) or not bounds[0] <= value <= bounds[1]:
        raise bad(name, f"must be an int in [{bounds[0]}, {bounds[1]}], got {_show(value)}")
    return int(value)


def _triple(
    value: Any, name: str, bounds: tuple[float, float], bad: _Bad
) -> tuple[float, float, float]:
    numbers = [n for n in map(_number, value) if n is not None] if isinstance(value, list) else []
    if (
        len(numbers) != 3
        or len(value) != 3
        or any(not bounds[0] <= v <= bounds[1] for v in numbers)
    ):
        raise bad(
            name,
            f"must be three finite numbers in [{bounds[0]:g}, {bounds[1]:g}] (one per RGB "
            f"channel), got {_show(value)}",
        )
    return numbers[0], numbers[1], numbers[2]


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python, but ``true`` is no size.
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A finite float from a JSON number (Python's json reads NaN and Infinity), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int literal too large for a float
        return None
    return number if math.isfinite(number) else None


def _show(value: Any, limit: int = 60) -> str:
    """A short repr of a value taken from a file, for messages (JSON values' reprs are one line:
    repr escapes newlines and other unprintable characters)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(text: object) -> str:
    """Text from elsewhere (a library's error, a file's value) on one line."""
    return " ".join(str(text).split())


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

    Refuses (CheckpointError, one line naming the file) invalid metadata (:func:`read_meta`),
    options the builder rejects, metadata and tensors that disagree (names, shapes, floating or
    not), and weights holding NaN or infinity (naming the tensors).
    """
    path = resolve(path_or_name)
    meta = read_meta(path)
    options = {k: v for k, v in meta.options.items() if v is not None}
    try:
        model = build_model(meta.variant, num_classes=len(meta.class_names), **options)
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"{path}: metadata field 'options' cannot build {meta.variant}: {_plain(err)}"
        ) from err
    expected = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors' own error types, for data that does not decode
        raise CheckpointError(f"{path}: tensors not readable ({_plain(err)})") from err
    problems = []
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing:
        problems.append(f"tensors missing for {meta.variant}: {_first(missing)}")
    if extra:
        problems.append(f"tensors not in {meta.variant}: {_first(extra)}")
    for key in sorted(set(expected) & set(stored)):
        if expected[key].shape != stored[key].shape:
            problems.append(
                f"{key}: metadata gives shape {tuple(expected[key].shape)}, "
                f"file holds {tuple(stored[key].shape)}"
            )
        elif expected[key].is_floating_point() != stored[key].is_floating_point():
            problems.append(
                f"{key}: expected {expected[key].dtype}, file holds {stored[key].dtype}"
            )
    if problems:
        raise CheckpointError(f"{path}: metadata and tensors disagree: " + "; ".join(problems))
    # A NaN or infinite weight makes every prediction NaN (or silently wrong): refuse the file.
    broken = [
        f"{key} ({bad} of {t.numel()})"
        for key, t in sorted(stored.items())
        if (bad := _non_finite(t))
    ]
    if broken:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in tensor {_first(broken)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in stored.items()})
    model.meta = meta
    return model.to(device).eval()


def _non_finite(t: torch.Tensor) -> int:
    """How many NaN or infinite values a tensor holds (0 for integer tensors)."""
    if not t.is_floating_point():
        return 0
    # torch has no isfinite for some 8-bit floats (float8_e4m3fn): widen those first.
    finite = torch.isfinite(t if t.element_size() > 1 else t.float())
    return int(finite.numel() - int(finite.sum()))


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


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
