"""Widgets shared by the pages: the probability table and the side-by-side map gallery."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from lran_core.maps import normalise, overlay
from ui.engine import ModelOutput

# Patches are often 50 x 50 px: shown at this width (and tiles shrunk to it) to be readable.
DISPLAY_SIDE = 256
GALLERY_COLUMNS = 4
MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>~$:]")
# The colour of readers' regions, on the canvas and wherever a region is shown.
REGION_RGB = (0, 229, 255)


def plain(text: str) -> str:
    """Text from a reader or a file name, escaped for Streamlit markdown, so that it shows as
    typed (a name like ``![x](http://...)`` must not become an image fetched from elsewhere)."""
    return MARKDOWN_SPECIAL.sub(r"\\\g<0>", str(text))


def display_size(width: int, height: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is ``side``, aspect kept."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def for_display(rgb: np.ndarray, side: int = DISPLAY_SIDE) -> Image.Image:
    """The image at display size: nearest-neighbour when enlarging, so pixels stay honest."""
    img = Image.fromarray(rgb)
    size = display_size(img.width, img.height, side)
    enlarging = size[0] > img.width
    return img.resize(size, Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX)


def region_overlay(rgb: np.ndarray, region: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The patch at display size with a drawn region (bool, image pixels) tinted cyan."""
    big = np.asarray(for_display(rgb, side)).astype(np.float32)
    mask = np.asarray(Image.fromarray(region).resize(big.shape[1::-1], Image.Resampling.NEAREST))
    big[mask] = 0.55 * big[mask] + 0.45 * np.array(REGION_RGB, np.float32)
    return big.round().astype(np.uint8)


def probability_table(outputs: list[ModelOutput]) -> pd.DataFrame:
    """One row per model: its prediction and the probability of every class."""
    rows = []
    for out in outputs:
        row = {"model": out.variant, "prediction": out.class_names[out.predicted]}
        row.update({name: float(p) for name, p in zip(out.class_names, out.probs, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def show_probabilities(outputs: list[ModelOutput]) -> None:
    """Draws the probability table.

    A static table (not an interactive grid): three rows, and its text is in the page, where
    screen readers and browser tests find it.
    """
    st.table(probability_table(outputs).set_index("model"))


def map_panels(
    rgb: np.ndarray,
    outputs: list[ModelOutput],
    target: int | None,
    alpha: float,
    cmap: str,
    shared: bool,
) -> list[tuple[str, np.ndarray]]:
    """(caption, overlay image) for every map, in display order after the patch itself.

    With ``shared`` one scale spans the maps of one type (the CAMs of all models, the two
    attention maps, the gates), so a weaker map looks weaker; maps of different types are in
    different units and are never put on one scale.
    """
    entries: list[tuple[str, str, np.ndarray]] = []
    for out in outputs:
        for name, heat in out.maps(target).items():
            label = out.class_names[out.predicted if target is None else target]
            caption = {
                "cam": f"{out.title} CAM ({label})",
                "attention": f"{out.title} attention",
            }.get(name, f"{out.title} gate {name.removeprefix('gate')}")
            entries.append((name.rstrip("0123456789"), caption, heat))
    scaled: dict[int, np.ndarray] = {}
    if shared:
        for group in {kind for kind, _, _ in entries}:
            idx = [i for i, (kind, _, _) in enumerate(entries) if kind == group]
            stack = normalise(np.stack([entries[i][2] for i in idx]), shared=True)
            scaled.update(zip(idx, stack, strict=True))
    else:
        scaled = {i: normalise(heat) for i, (_, _, heat) in enumerate(entries)}
    big = np.asarray(for_display(rgb))
    return [
        (caption, overlay(big, scaled[i], alpha, cmap)) for i, (_, caption, _) in enumerate(entries)
    ]


def show_gallery(panels: list[tuple[str, np.ndarray | Image.Image]]) -> None:
    """Draws captioned images side by side, ``GALLERY_COLUMNS`` to a row."""
    for start in range(0, len(panels), GALLERY_COLUMNS):
        row = panels[start : start + GALLERY_COLUMNS]
        # A short last row leaves its right-hand columns empty.
        for column, (caption, img) in zip(st.columns(GALLERY_COLUMNS), row, strict=False):
            column.image(img, caption=caption)
