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

from lran_core.maps import normalise, overlay
from review.patches import PatchMaps
from review.records import READER_RGB, REFERENCE_RGB
from review.scoring import ScoredMap

# Patches are often 50 x 50 px: shown at this width (and tiles shrunk to it) to be readable.
DISPLAY_SIDE = 256
GALLERY_COLUMNS = 4
MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>~$:]")
# The colour of readers' regions, on the canvas and wherever a region is shown (and in their
# exported GeoJSON). An imported reference is outlined white on black, visible over every
# colour map.
REGION_RGB = READER_RGB
# Regions are shown larger than patches: their detail is the point of reviewing them whole.
REGION_SIDE = 384
REGION_MAP_TITLES = {"probability": "probability", "cam": "CAM", "attention": "attention"}


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
    big[mask] = 0.55 * big[mask] + 0.45 * np.array(REGION_RGB, np.float32)
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


def region_panels(
    rgb: np.ndarray,
    layers: dict[str, dict[str, ScoredMap]],
    titles: dict[str, str],
    class_name: str,
    alpha: float,
    cmap: str,
    shared: bool,
    reference: np.ndarray | None,
) -> list[dict[str, tuple[str, np.ndarray]]]:
    """One row per map type: model -> (caption, overlay) for the models that have that map.

    Maps are shrunk to display size before they are scaled (display only; scores use them
    whole). Probabilities keep their own 0..1 scale: they are in absolute units, and min-max
    would show 0.01 against 0.02 as blue against red. CAMs and attention follow ``shared``
    as for a patch (one scale per map type across the models). ``reference`` is outlined.
    """
    big = np.asarray(for_display(rgb, REGION_SIDE))
    size = big.shape[1::-1]
    rows = []
    for name, title in REGION_MAP_TITLES.items():
        models = [m for m in layers if name in layers[m]]
        stack = np.stack(
            [cv2.resize(layers[m][name].values, size, interpolation=cv2.INTER_AREA) for m in models]
        )
        scaled = np.clip(stack, 0.0, 1.0) if name == "probability" else normalise(stack, shared)
        label = "" if name == "attention" else f" ({class_name})"
        row = {}
        for model, heat in zip(models, scaled, strict=True):
            image = overlay(big, heat, alpha, cmap)
            if reference is not None:
                image = outline(image, reference)
            row[model] = (f"{titles[model]} {title}{label}", image)
        rows.append(row)
    return rows


def show_region_grid(
    header: tuple[str, np.ndarray | Image.Image],
    models: list[str],
    rows: list[dict[str, tuple[str, np.ndarray]]],
) -> None:
    """The region itself, then one row per map type with one column per model, in ``models``
    order (a model without that map, e.g. the base network's attention, leaves a gap)."""
    st.image(header[1], caption=header[0], width=REGION_SIDE)
    for row in rows:
        for column, model in zip(st.columns(len(models)), models, strict=True):
            if model in row:
                column.image(row[model][1], caption=row[model][0])


def probability_table(outputs: list[PatchMaps], titles: dict[str, str]) -> pd.DataFrame:
    """One row per model (by its title: display name, or letter when anonymised): its
    prediction and the probability of every class."""
    rows = []
    for out in outputs:
        row = {"model": titles[out.variant], "prediction": out.class_names[out.predicted]}
        row.update({name: float(p) for name, p in zip(out.class_names, out.probs, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def show_probabilities(outputs: list[PatchMaps], titles: dict[str, str]) -> None:
    """Draws the probability table.

    A static table (not an interactive grid): three rows, and its text is in the page, where
    screen readers and browser tests find it.
    """
    st.table(probability_table(outputs, titles).set_index("model"))


def map_panels(
    rgb: np.ndarray,
    outputs: list[PatchMaps],
    titles: dict[str, str],
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
        for name, scored in out.maps(target).items():
            heat = scored.values
            label = out.class_names[out.cam_class(target)]
            caption = {
                "cam": f"{titles[out.variant]} CAM ({label})",
                "attention": f"{titles[out.variant]} attention",
            }.get(name, f"{titles[out.variant]} gate {name.removeprefix('gate')}")
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
