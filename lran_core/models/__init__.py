"""Named model variants: ``build_model("resnet18-lran", num_classes=2, **options)``."""

from __future__ import annotations

from typing import Any

from .bases import BASES
from .lran import ATTENTION_KINDS, Explanation, LRANClassifier, ModelMeta


def _variant_names() -> list[str]:
    return [
        base if kind == "base" else f"{base}-{kind}" for base in BASES for kind in ATTENTION_KINDS
    ]


MODELS: tuple[str, ...] = tuple(_variant_names())
# The paper's names: the base network by name, its attention variants by the base's initial.
_BASE_TITLES = {"resnet18": "ResNet-18", "densenet": "DenseNet-121", "simplenet": "SimpleNet"}
DISPLAY_NAMES: dict[str, str] = {
    name: f"{base[0].upper()}-{kind.upper()}" if kind else _BASE_TITLES[base]
    for name in MODELS
    for base, _, kind in [name.partition("-")]
}


def list_models() -> list[str]:
    """The registered variant names (the paper's nine: three bases x base/RAN/LRAN)."""
    return list(MODELS)


def display_name(name: str) -> str:
    """How a variant is shown to people: ``resnet18`` -> "ResNet-18", ``resnet18-ran`` ->
    "R-RAN", ``resnet18-lran`` -> "R-LRAN" (unknown names are shown as they are)."""
    return DISPLAY_NAMES.get(name, name)


def parse_variant(name: str) -> tuple[str, str]:
    """Splits a variant name: ``"resnet18-lran"`` -> ``("resnet18", "lran")``,
    ``"resnet18"`` -> ``("resnet18", "base")``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    base, _, kind = name.partition("-")
    return base, kind or "base"


def build_model(name: str, num_classes: int = 2, **options: Any) -> LRANClassifier:
    """Builds a named variant with random weights.

    Options: ``cut`` (where the base is cut), ``widths`` (attention encoder widths, finest
    first), ``decoder_levels``. See :class:`LRANClassifier`.
    """
    base, kind = parse_variant(name)
    return LRANClassifier(base=base, attention=kind, num_classes=num_classes, **options)


__all__ = [
    "DISPLAY_NAMES",
    "MODELS",
    "Explanation",
    "LRANClassifier",
    "ModelMeta",
    "build_model",
    "display_name",
    "list_models",
    "parse_variant",
]
