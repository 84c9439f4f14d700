"""Display helpers for maps: normalise, colour-map, overlay on the RGB patch (design.md §2)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from matplotlib import colormaps

COLOUR_MAPS: list[str] = ["viridis", "inferno", "magma", "cividis", "turbo", "jet", "gray"]


def normalise(maps: np.ndarray | torch.Tensor, shared: bool = False) -> np.ndarray:
    """ReLU then min-max to [0, 1].

    Takes maps (..., H, W). With ``shared=False`` every H x W map is scaled on its own; with
    ``shared=True`` one scale spans all of them, so a weaker map stays weaker (per-map scaling
    hides that one model is more confident). A constant map becomes zeros. Gives float32.
    """
    a = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if a.ndim < 2:
        raise ValueError(f"maps must be (..., H, W), got shape {a.shape}")
    a = np.maximum(a.astype(np.float32), 0.0)
    axes = None if shared else (-2, -1)
    lo = a.min(axis=axes, keepdims=True)
    span = a.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


def colourise(map2d: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Takes a map (H, W) in [0, 1]; gives an RGB image (H, W, 3) uint8 through ``cmap``."""
    if cmap not in COLOUR_MAPS:
        raise ValueError(f"unknown colour map {cmap!r}; choose from {COLOUR_MAPS}")
    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    idx = np.clip(np.asarray(map2d, dtype=np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return lut[idx]


def resize_map(map2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map (h, w) to ``size`` = (H, W)."""
    height, width = size
    if map2d.shape == (height, width):
        return map2d.astype(np.float32)
    return cv2.resize(map2d.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def overlay(
    rgb: np.ndarray, map2d: np.ndarray, alpha: float = 0.5, cmap: str = "viridis"
) -> np.ndarray:
    """Blends a colour-mapped map over a patch.

    Takes ``rgb`` (H, W, 3) uint8 and ``map2d`` (h, w) in [0, 1] (resized to H x W); gives
    (H, W, 3) uint8 = (1 - alpha) * rgb + alpha * colour(map).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = colourise(resize_map(map2d, rgb.shape[:2]), cmap).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * heat
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
