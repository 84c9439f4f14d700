"""Review: one patch at a time; the models' predictions and maps, the reader's region and label.

The drawn region is whatever the canvas last sent. It is mirrored into session state
(`ui.session.regions`) by the canvas's change callback, so it survives page switches and a
failed save; Save reads it from there.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas

import lran_core
from annotations.shapes import canvas_to_mask, mask_to_geojson
from annotations.store import UNSURE, ReviewRecord, StoreError
from lran_core.maps import COLOUR_MAPS
from ui import engine, layout, session, widgets
from ui.session import CaseItem

CANVAS_SIDE = 384
DRAWING_TOOLS = {"Freehand": "freedraw", "Polygon": "polygon", "Rectangle": "rect"}
REGION_STYLE = {
    "stroke_color": "#{:02x}{:02x}{:02x}".format(*widgets.REGION_RGB),
    "fill_color": "rgba({}, {}, {}, 0.25)".format(*widgets.REGION_RGB),
}


def canvas_key(item: CaseItem) -> str:
    """Widget key of an item's canvas: one canvas per item, so drawings never mix."""
    return f"canvas-{item.item_hash[:16]}"


def remember_drawing(item_hash: str, key: str) -> None:
    """Canvas change callback: keeps the drawing the canvas just sent."""
    value = st.session_state.get(key) or {}
    drawing = value.get("drawing") or {}
    if drawing.get("raw") is not None:
        session.regions()[item_hash] = drawing["raw"]


def remember_label(item_hash: str, key: str) -> None:
    """Label change callback: keeps the reader's diagnosis beyond this page's widgets."""
    session.labels()[item_hash] = st.session_state[key]


def navigation(index: int, total: int, item: CaseItem) -> None:
    """Previous / next buttons and where the reader is in the case list."""
    left, middle, right = st.columns([1, 6, 1], vertical_alignment="center")
    left.button(
        "Previous", on_click=session.set_index, args=(index - 1,), disabled=index == 0,
        key="prev",
        icon=":material/arrow_back:",
    )
    middle.markdown(f"**Patch {index + 1} of {total}**: {widgets.plain(item.filename)} "
                    f"({item.width} x {item.height} px)")
    right.button(
        "Next", on_click=session.set_index, args=(index + 1,), disabled=index >= total - 1,
        key="next",
        icon=":material/arrow_forward:",
    )


def map_controls(class_names: list[str]) -> tuple[int | None, float, str, bool]:
    """Target class (None: each model's prediction), opacity, colour map, shared scale."""
    c1, c2, c3, c4 = st.columns(4)
    target = c1.selectbox(
        "CAM target class", [None, *range(len(class_names))], key="target",
        format_func=lambda i: "predicted class" if i is None else class_names[i],
    )
    alpha = c2.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    cmap = c3.selectbox("Colour map", COLOUR_MAPS, key="cmap")
    scale = c4.radio("Scale", ["per map", "shared"], horizontal=True, key="scale",
                     help="Shared: one scale for the maps of one type across models, so a "
                     "weaker map looks weaker.")
    return target, alpha, cmap, scale == "shared"


def save(item: CaseItem, outputs: list[engine.ModelOutput], target: int | None,
         canvas_size: tuple[int, int]) -> None:
    """Stores the review in one transaction; on failure says why and keeps the review on screen."""
    reader = layout.reader()
    label = session.labels().get(item.item_hash)
    if not reader:
        st.warning("Enter your name as **Reader** in the sidebar before saving.")
        return
    if label is None:
        st.warning("Choose your diagnosis before saving.")
        return
    try:
        mask = canvas_to_mask(
            session.regions().get(item.item_hash) or {}, (item.width, item.height), canvas_size
        )
    except ValueError as err:
        st.error(f"The drawing cannot be turned into a region: {err}")
        return
    scores = engine.score_maps(outputs, mask, target)
    record = ReviewRecord(
        item_hash=item.item_hash,
        filename=item.filename,
        width=item.width,
        height=item.height,
        # The classifier takes every upload whole, as one patch (the store's other kind,
        # 'region', is for images cut into patches, which this page does not do).
        kind="patch",
        reader=reader,
        model_set=layout.model_set(),
        label=label,
        mask=mask,
        geojson=mask_to_geojson(mask, {"reader": reader, "label": label}),
        predictions={
            out.variant: dict(zip(out.class_names, map(float, out.probs), strict=True))
            for out in outputs
        },
        scores=scores,
        mpp=item.mpp,
    )
    try:
        result = engine.open_store(engine.database_url()).save_review(record)
    except (StoreError, ValueError) as err:
        st.error(
            f"Not saved: the review database could not be written ({err}). Your region and "
            "diagnosis are still here; save again once the database is available."
        )
        return
    session.saved()[item.item_hash] = {
        "review_id": result.review_id, "version": result.version, "scores": scores,
        "pixels": int(mask.sum()),
    }


def annotate(item: CaseItem, outputs: list[engine.ModelOutput], target: int | None) -> None:
    """The drawing canvas, the reader's diagnosis and Save."""
    st.subheader("Your region and diagnosis")
    width, height = widgets.display_size(item.width, item.height, CANVAS_SIDE)
    draw_col, form_col = st.columns([3, 2])
    with draw_col:
        tool = st.radio("Tool", list(DRAWING_TOOLS), horizontal=True, key="tool",
                        help="Polygon: click the vertices, then click the first one to close "
                        "it. Undo, redo and clear are in the canvas toolbar.")
        key = canvas_key(item)
        seeds = session.canvas_seeds()
        if key not in st.session_state:
            # A canvas (re)mounts with the drawing last sent for this item. While it stays
            # mounted, its initial drawing must not change: the canvas would reload it and lose
            # its undo history.
            seeds[item.item_hash] = session.regions().get(item.item_hash)
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
        classes = outputs[0].class_names
        options = [*classes, UNSURE]
        current = session.labels().get(item.item_hash)
        label_key = f"label-{item.item_hash[:16]}"
        st.radio(
            "Your diagnosis", options, key=label_key,
            index=options.index(current) if current in options else None,
            on_change=remember_label, args=(item.item_hash, label_key),
        )
        if st.button("Save review", type="primary", icon=":material/save:", key="save"):
            save(item, outputs, target, (width, height))
        done = session.saved().get(item.item_hash)
        if done:
            st.success(f"Saved as review {done['review_id']}, version {done['version']} "
                       f"(region of {done['pixels']} px).")
            st.dataframe(pd.DataFrame(done["scores"]), hide_index=True)


def main() -> None:
    """The Review page."""
    st.title("Review")
    case = session.items()
    if not case:
        st.info("No patches yet: upload them on the Start page.")
        return
    name = layout.model_set()
    if not name:
        st.error("No trained weights are installed, so there is nothing to review yet.")
        return
    index = session.current_index()
    item = list(case.values())[index]
    navigation(index, len(case), item)
    try:
        outputs = engine.explain(name, engine.models_dir(), item.item_hash, item.rgb)
    except (lran_core.NoWeightsError, lran_core.CheckpointError) as err:
        st.error(str(err))
        return
    widgets.show_probabilities(outputs)
    target, alpha, cmap, shared = map_controls(outputs[0].class_names)
    panels = widgets.map_panels(item.rgb, outputs, target, alpha, cmap, shared)
    widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
    annotate(item, outputs, target)


layout.page_setup("Review")
main()
