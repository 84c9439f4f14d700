"""Drawing helpers shared by the views: images at display size, overlays, outlines, the
probability table and the side-by-side map gallery, for a patch and for a region."""

from __future__ import annotations

import base64
import io
import re

import cv2
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from review.patches import PatchMaps
from review.records import READER_RGB, REFERENCE_RGB

# Patches are often 50 x 50 px: shown at this width (and tiles shrunk to it) to be readable.
DISPLAY_SIDE = 256
GALLERY_COLUMNS = 4
MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>~$:]")


def plain(text: str) -> str:
    """Text from a reader or a file name, escaped for Streamlit markdown, so that it shows as
    typed (a name like ``![x](http://...)`` must not become an image fetched from elsewhere)."""
    return MARKDOWN_SPECIAL.sub(r"\\\g<0>", str(text))


def data_url(rgb: np.ndarray, side: int) -> str:
    """An image shrunk to ``side`` px on its longer side, as a JPEG data URL (for tables)."""
    buffer = io.BytesIO()
    for_display(rgb, side).save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


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
    big[mask] = 0.55 * big[mask] + 0.45 * np.array(READER_RGB, np.float32)
    return big.round().astype(np.uint8)


def outline(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (h, w, 3) with the border of ``region`` (bool, any size; resized to
    the image, nearest) drawn on it, a light line over a dark one."""
    small = cv2.resize(region.astype(np.uint8), image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(small, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(image).copy()
    cv2.drawContours(out, contours, -1, (0, 0, 0), 3)
    cv2.drawContours(out, contours, -1, REFERENCE_RGB, 1)
    return out


def probability_table(outputs: list[PatchMaps], titles: dict[str, str]) -> pd.DataFrame:
    """One row per model (by its title: display name, or letter when anonymised), in the
    titles' order: its prediction and the probability of every class."""
    rows = []
    order = list(titles)
    for out in sorted(outputs, key=lambda o: order.index(o.variant)):
        row: dict[str, str | float] = {
            "model": titles[out.variant],
            "prediction": out.class_names[out.predicted],
        }
        row.update({name: float(p) for name, p in zip(out.class_names, out.probs, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def show_probabilities(outputs: list[PatchMaps], titles: dict[str, str]) -> None:
    """Draws the probability table.

    A static table (not an interactive grid): three rows, and its text is in the page, where
    screen readers and browser tests find it.
    """
    st.table(probability_table(outputs, titles).set_index("model"))


def show_gallery(panels: list[tuple[str, np.ndarray | Image.Image]]) -> None:
    """Draws captioned images side by side, ``GALLERY_COLUMNS`` to a row."""
    for start in range(0, len(panels), GALLERY_COLUMNS):
        row = panels[start : start + GALLERY_COLUMNS]
        # A short last row leaves its right-hand columns empty.
        for column, (caption, img) in zip(st.columns(GALLERY_COLUMNS), row, strict=False):
            column.image(img, caption=caption)
