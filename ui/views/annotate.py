"""The reader's drawing canvas, diagnosis and Save.

The drawn region is whatever the canvas last sent. It is mirrored into session state
(:func:`ui.state.regions`) by the canvas's change callback, so it survives page switches and a
failed save; Save reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from annotations.records import UNSURE, ReviewRecord
from annotations.store import StoreError
from review.drawing import drawn_region
from review.items import ImageItem
from review.modelsets import display_name
from ui import cache, sidebar, state, widgets

# One canvas size for patches and regions: a drawing is kept in canvas coordinates, and must
# mean the same pixels when the reader switches an image between the two.
CANVAS_SIDE = 384
DRAWING_TOOLS = {"Freehand": "freedraw", "Polygon": "polygon", "Rectangle": "rect"}
REGION_STYLE = {
    "stroke_color": "#{:02x}{:02x}{:02x}".format(*widgets.REGION_RGB),
    "fill_color": "rgba({}, {}, {}, 0.25)".format(*widgets.REGION_RGB),
}


def canvas_key(item: ImageItem) -> str:
    """Widget key of an item's canvas: one canvas per item, so drawings never mix."""
    return f"canvas-{item.item_hash[:16]}"


def remember_drawing(item_hash: str, key: str) -> None:
    """Canvas change callback: keeps the drawing the canvas just sent."""
    value = st.session_state.get(key) or {}
    drawing = value.get("drawing") or {}
    if drawing.get("raw") is not None:
        state.regions()[item_hash] = drawing["raw"]


def remember_label(item_hash: str, key: str) -> None:
    """Label change callback: keeps the reader's diagnosis beyond this page's widgets."""
    state.labels()[item_hash] = st.session_state[key]


def drawn_review(
    item: ImageItem, canvas_size: tuple[int, int]
) -> tuple[str, str, np.ndarray] | None:
    """(reader, label, region mask) ready to save, or None with the reason shown."""
    reader = sidebar.reader()
    label = state.labels().get(item.item_hash)
    if not reader:
        st.warning("Enter your name as **Reader** in the sidebar before saving.")
        return None
    if label is None:
        st.warning("Choose your diagnosis before saving.")
        return None
    try:
        mask = drawn_region(
            state.regions().get(item.item_hash) or {}, (item.width, item.height), canvas_size
        )
    except ValueError as err:
        st.error(f"The drawing cannot be turned into a region: {widgets.plain(str(err))}")
        return None
    return reader, label, mask


Build = Callable[[str, str, np.ndarray], ReviewRecord]


def save(item: ImageItem, canvas_size: tuple[int, int], build: Build) -> None:
    """Saves the reader's review: ``build(reader, label, mask)`` gives the record, stored in one
    transaction; on failure says why and keeps the review on screen for another try."""
    drawn = drawn_review(item, canvas_size)
    if drawn is None:
        return
    with st.spinner("Scoring every map against your region…"):
        record = build(*drawn)
    try:
        result = cache.store(cache.database_url()).save_review(record)
    except (StoreError, ValueError) as err:
        state.saved().pop(item.item_hash, None)
        st.error(
            f"Not saved: {widgets.plain(str(err))}. Your region and diagnosis are still here; "
            "save again once the problem is solved."
        )
        return
    state.saved()[item.item_hash] = {
        "review_id": result.review_id,
        "version": result.version,
        "scores": [s.__dict__ for s in record.scores],
        "pixels": int(record.mask.sum()),
    }


def annotate(item: ImageItem, class_names: list[str], build: Build) -> None:
    """The drawing canvas, the reader's diagnosis and Save, which stores ``build``'s record."""
    st.subheader("Your region and diagnosis")
    width, height = widgets.display_size(item.width, item.height, CANVAS_SIDE)
    draw_col, form_col = st.columns([3, 2])
    with draw_col:
        tool = st.radio(
            "Tool",
            list(DRAWING_TOOLS),
            horizontal=True,
            key="tool",
            help="Polygon: click the vertices, then click the first one to close it. Undo, redo "
            "and clear are in the canvas toolbar.",
        )
        key = canvas_key(item)
        seeds = state.canvas_seeds()
        if key not in st.session_state:
            # A canvas (re)mounts with the drawing last sent for this item. While it stays
            # mounted, its initial drawing must not change: the canvas would reload it and lose
            # its undo history.
            seeds[item.item_hash] = state.regions().get(item.item_hash)
        st_canvas(
            **REGION_STYLE,
            stroke_width=2,
            background_image=widgets.for_display(item.rgb, CANVAS_SIDE),
            width=width,
            height=height,
            drawing_mode=DRAWING_TOOLS[tool],
            initial_drawing=seeds.get(item.item_hash),
            key=key,
            on_change=partial(remember_drawing, item.item_hash, key),
        )
    with form_col:
        options = [*class_names, UNSURE]
        current = state.labels().get(item.item_hash)
        label_key = f"label-{item.item_hash[:16]}"
        st.radio(
            "Your diagnosis",
            options,
            key=label_key,
            index=options.index(current) if current in options else None,
            on_change=remember_label,
            args=(item.item_hash, label_key),
        )
        if st.button("Save review", type="primary", icon=":material/save:", key="save"):
            save(item, (width, height), build)
        done = state.saved().get(item.item_hash)
        if done:
            st.success(
                f"Saved as review {done['review_id']}, version {done['version']} "
                f"(region of {done['pixels']} px)."
            )
            st.dataframe(score_table(done["scores"]), hide_index=True)


def score_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Score rows with the model shown by its display name."""
    frame = pd.DataFrame(rows)
    if "model" in frame:
        frame["model"] = frame["model"].map(display_name)
    return frame
