"""Argument types shared by the command lines (``lran-train``, ``lran-evaluate``): a bad value
is refused by argparse in one line, before any data is read, not by a traceback later."""

from __future__ import annotations

import argparse
import math

import torch


def positive_int(text: str) -> int:
    """An integer of at least 1 (batch sizes, image counts)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (the side of PCam's labelled centre: 0.3333)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text!r}")
    return value


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, or ``cuda``/``cuda:N`` where a GPU is."""
    try:
        found = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"must be cpu or cuda, got {text!r}") from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no GPU that torch can use")
    if found.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu or cuda, got {text!r}")
    return text
