"""Batched prediction over images held in memory, and the numeric precision to run it in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from .models import LRANClassifier
from .transforms import to_input

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AMX or AVX512-BF16); elsewhere bf16 is emulated and
    slower than fp32. torch exposes these probes only privately, hence the guarded lookups."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def use_bf16(device: torch.device, precision: str) -> bool:
    """Whether to run under bf16 autocast: ``bf16``, ``fp32``, or ``auto`` (bf16 on a CPU with
    bf16 instructions, where convolutions run about twice as fast; fp32 elsewhere)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cpu" and native_bf16()


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast on ``device`` when :func:`use_bf16` says so, else nothing."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(device, precision)):
        yield


@torch.no_grad()
def predict(
    model: LRANClassifier, images: torch.Tensor, batch_size: int = 128, precision: str = "fp32"
) -> np.ndarray:
    """Class probabilities of images at any square size.

    Takes uint8 images (N, 3, h, h) (e.g. :class:`lran_core.data.PatchDataset` ``images``),
    turned into the model's input by :func:`lran_core.transforms.to_input` with the model's
    ``meta``; gives float32 probabilities (N, K) as numpy. Leaves the model in eval mode.
    """
    model.eval()
    device = next(model.parameters()).device
    meta = model.meta
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size].to(device), meta.input_size, meta.mean, meta.std)
        with autocast(device, precision):
            logits = model(x.contiguous(memory_format=torch.channels_last))
        out.append(logits.float().softmax(-1).cpu())
    if not out:
        return np.zeros((0, model.fc.out_features), dtype=np.float32)
    return torch.cat(out).numpy()
