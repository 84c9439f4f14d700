"""Review: one image at a time; the models' predictions and maps, the reader's region and label.

An image no larger than the models' patch is classified whole, as one patch. A larger one (a
region exported from a slide viewer) is by default reviewed as a region: at the microns per
pixel the reader gives (prefilled from TIFF tags), lran_core.region tiles it at the models'
resolution and stitches each model's probability, CAM and attention maps over it. A reference
annotation (BACH label mask or QuPath GeoJSON) can be imported for a region, outlined over the
maps and scored against them; its scores are stored as a review of their own, by the reader
'reference:<file name>', never mixed into the reader's.

The drawn region is whatever the canvas last sent. It is mirrored into session state
(`ui.session.regions`) by the canvas's change callback, so it survives page switches and a
failed save; Save reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas

import lran_core
from annotations.shapes import canvas_to_mask, mask_to_geojson
from annotations.store import UNSURE, ReviewRecord, StoreError
from lran_core.maps import COLOUR_MAPS
from lran_core.region import RegionError, RegionMaps, field_of_view_um
from ui import engine, layout, session, widgets
from ui.session import CaseItem, Reference

# One canvas size for patches and regions: a drawing is kept in canvas coordinates, and must
# mean the same pixels when the reader switches an image between the two.
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


def remember_setting(item_hash: str, name: str, key: str) -> None:
    """Region toggle / mpp change callback: keeps the setting beyond this page's widgets."""
    session.region_settings()[item_hash][name] = st.session_state[key]


def remember_reference(item: CaseItem, key: str) -> None:
    """Reference uploader change callback: reads the file (or forgets the reference when it is
    removed). A refused file leaves no reference, and says why."""
    upload = st.session_state.get(key)
    session.references().pop(item.item_hash, None)
    session.reference_errors().pop(item.item_hash, None)
    if upload is None:
        return
    try:
        reference = session.read_reference(upload.name, upload.getvalue(),
                                           (item.width, item.height))
    except Exception as err:  # noqa: BLE001 (see below)
        # An untrusted file: whatever its reader raises refuses this file, not the page.
        reason = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        session.reference_errors()[item.item_hash] = f"{upload.name}: {reason}"
    else:
        session.references()[item.item_hash] = reference


def navigation(index: int, total: int, item: CaseItem) -> None:
    """Previous / next buttons and where the reader is in the case list."""
    left, middle, right = st.columns([1, 6, 1], vertical_alignment="center")
    left.button(
        "Previous", on_click=session.set_index, args=(index - 1,), disabled=index == 0,
        key="prev",
        icon=":material/arrow_back:",
    )
    middle.markdown(f"**Image {index + 1} of {total}**: {widgets.plain(item.filename)} "
                    f"({item.width} x {item.height} px)")
    right.button(
        "Next", on_click=session.set_index, args=(index + 1,), disabled=index >= total - 1,
        key="next",
        icon=":material/arrow_forward:",
    )


def map_controls(
    class_names: list[str], region: bool = False
) -> tuple[int | None, float, str, bool]:
    """Target class, opacity, colour map, shared scale.

    For a patch the target may be None (each model's predicted class); a region has no one
    prediction, so its class (of the CAM and the probability map) is chosen, the last one (the
    positive class) by default.
    """
    c1, c2, c3, c4 = st.columns(4)
    if region:
        target = c1.selectbox(
            "Class (CAM and probability)", range(len(class_names)), key="region_class",
            index=len(class_names) - 1, format_func=lambda i: class_names[i],
        )
    else:
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


def drawn_review(
    item: CaseItem, canvas_size: tuple[int, int]
) -> tuple[str, str, np.ndarray] | None:
    """(reader, label, region mask) ready to save, or None with the reason shown."""
    reader = layout.reader()
    label = session.labels().get(item.item_hash)
    if not reader:
        st.warning("Enter your name as **Reader** in the sidebar before saving.")
        return None
    if label is None:
        st.warning("Choose your diagnosis before saving.")
        return None
    try:
        mask = canvas_to_mask(
            session.regions().get(item.item_hash) or {}, (item.width, item.height), canvas_size
        )
    except ValueError as err:
        st.error(f"The drawing cannot be turned into a region: {err}")
        return None
    return reader, label, mask


def store(record: ReviewRecord) -> None:
    """Stores one review in one transaction; on failure says why and keeps the review on screen
    for another try."""
    try:
        result = engine.open_store(engine.database_url()).save_review(record)
    except (StoreError, ValueError) as err:
        st.error(
            f"Not saved: the review database could not be written ({err}). Your region and "
            "diagnosis are still here; save again once the database is available."
        )
        return
    session.saved()[record.item_hash] = {
        "review_id": result.review_id, "version": result.version, "scores": record.scores,
        "pixels": int(record.mask.sum()),
    }


def save_drawn(
    item: CaseItem,
    canvas_size: tuple[int, int],
    *,
    kind: str,
    predictions: dict[str, dict[str, float]],
    score: Callable[[np.ndarray], list[dict]],
    mpp: float | None,
    note: str | None = None,
) -> None:
    """Saves the reader's drawn region and label with the models' predictions and the scores
    ``score`` gives for the region's mask (H, W)."""
    drawn = drawn_review(item, canvas_size)
    if drawn is None:
        return
    reader, label, mask = drawn
    properties = {"reader": reader, "label": label} | ({"mpp": mpp} if mpp else {})
    store(ReviewRecord(
        item_hash=item.item_hash,
        filename=item.filename,
        width=item.width,
        height=item.height,
        kind=kind,
        reader=reader,
        model_set=layout.model_set(),
        label=label,
        mask=mask,
        geojson=mask_to_geojson(mask, properties),
        predictions=predictions,
        scores=score(mask),
        mpp=mpp,
        note=note,
    ))


def save(item: CaseItem, outputs: list[engine.ModelOutput], target: int | None,
         canvas_size: tuple[int, int]) -> None:
    """Saves the reader's review of a patch (the classifier takes the upload whole)."""
    save_drawn(
        item, canvas_size, kind="patch",
        predictions={
            out.variant: dict(zip(out.class_names, map(float, out.probs), strict=True))
            for out in outputs
        },
        score=partial(engine.score_maps, outputs, target=target),
        mpp=item.mpp,
    )


def region_note(maps: dict[str, RegionMaps], mpp: float, class_names: list[str]) -> str:
    """How a region's maps were made, stored with each review of it: the item's stored mpp is
    that of its first review, and the class and resolution may differ between reviews."""
    first = next(iter(maps.values()))
    tiles = ", ".join(f"{name} {m.tiles}" for name, m in maps.items())
    return (f"region maps at {mpp:g} um/px, class {class_names[first.cam_class]}, tiles "
            f"overlapping {engine.REGION_OVERLAP:.0%} ({tiles})")


def save_region(item: CaseItem, maps: dict[str, RegionMaps], mpp: float,
                class_names: list[str], canvas_size: tuple[int, int]) -> None:
    """Saves the reader's review of a region: every model's maps scored on the whole region."""

    def score(mask: np.ndarray) -> list[dict]:
        # Full-resolution scores of a megapixel region take a few seconds.
        with st.spinner("Scoring every map on the whole region…"):
            return engine.score_region(maps, mask)

    save_drawn(
        item, canvas_size, kind="region",
        predictions=engine.region_predictions(maps, class_names), score=score, mpp=mpp,
        note=region_note(maps, mpp, class_names),
    )


def annotate(
    item: CaseItem, class_names: list[str], on_save: Callable[[tuple[int, int]], None]
) -> None:
    """The drawing canvas, the reader's diagnosis and Save, which calls ``on_save`` with the
    canvas size."""
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
        options = [*class_names, UNSURE]
        current = session.labels().get(item.item_hash)
        label_key = f"label-{item.item_hash[:16]}"
        st.radio(
            "Your diagnosis", options, key=label_key,
            index=options.index(current) if current in options else None,
            on_change=remember_label, args=(item.item_hash, label_key),
        )
        if st.button("Save review", type="primary", icon=":material/save:", key="save"):
            on_save((width, height))
        done = session.saved().get(item.item_hash)
        if done:
            st.success(f"Saved as review {done['review_id']}, version {done['version']} "
                       f"(region of {done['pixels']} px).")
            st.dataframe(pd.DataFrame(done["scores"]), hide_index=True)


def region_choice(item: CaseItem, set_name: str) -> tuple[bool, float | None]:
    """The reader's say on whether the item is a region, and at how many microns per pixel.

    By default an image larger than the models' patch is a region, at the mpp of its TIFF
    resolution tags (none for most PNGs: the reader types it).
    """
    settings = session.region_settings()
    if item.item_hash not in settings:
        settings[item.item_hash] = {
            "region": engine.looks_like_region(set_name, engine.models_dir(), item.width,
                                               item.height),
            "mpp": item.mpp,
        }
    current = settings[item.item_hash]
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    toggle_key, mpp_key = f"as-region-{item.item_hash[:16]}", f"mpp-{item.item_hash[:16]}"
    left.toggle(
        "Review as a region (tiled at the models' resolution)", value=current["region"],
        key=toggle_key, on_change=remember_setting, args=(item.item_hash, "region", toggle_key),
        help="Off: the whole image is classified as one patch, shrunk to the models' input.",
    )
    if current["region"]:
        right.number_input(
            "Microns per pixel of this image", value=current["mpp"], step=0.01, format="%.3f",
            key=mpp_key, on_change=remember_setting, args=(item.item_hash, "mpp", mpp_key),
            help="E.g. 0.47 for a 20x scan, 4.7 for a 10-fold downsized export. "
            + ("Read from the file's resolution tags." if item.mpp else
               "The file has no resolution tags."),
        )
    return current["region"], current["mpp"]


def region_probability_table(maps: dict[str, RegionMaps], class_names: list[str]) -> None:
    """One row per model: its region-level prediction, class probabilities and tile count."""
    rows = []
    for model, probs in engine.region_predictions(maps, class_names).items():
        rows.append({"model": model, "prediction": max(probs, key=probs.__getitem__),
                     **probs, "tiles": maps[model].tiles})
    st.table(pd.DataFrame(rows).set_index("model"))


def reference_import(item: CaseItem) -> Reference | None:
    """The reference uploader, and the imported reference (or why the file was refused)."""
    key = f"reference-{item.item_hash[:16]}"
    st.file_uploader(
        "Reference annotation (optional): a label mask of this image's size (PNG or TIFF; 0 "
        "unannotated, 1 benign, 2 in situ, 3 invasive) or a QuPath GeoJSON export",
        type=session.REFERENCE_TYPES, key=key, on_change=remember_reference, args=(item, key),
    )
    error = session.reference_errors().get(item.item_hash)
    if error:
        st.error(f"Reference not imported: {widgets.plain(error)}")
    reference = session.references().get(item.item_hash)
    if reference is not None:
        st.caption(
            f"Reference: {widgets.plain(reference.filename)} ({reference.source}, "
            f"{reference.summary}): {int(reference.region.sum())} px annotated, outlined in "
            "white; every annotated pixel (labels above 0) counts as the region."
        )
    return reference


def save_reference(item: CaseItem, reference: Reference, mpp: float, rows: list[dict],
                   note: str, key: tuple) -> None:
    """Stores the reference's scores as a review of its own (one transaction), by the reader
    'reference:<file name>' with the reference's region, no predictions (the reference gave
    no diagnosis in the models' classes) and a note saying who imported it, from what."""
    importer = layout.reader()
    if not importer:
        st.warning("Enter your name as **Reader** in the sidebar before storing the reference.")
        return
    reader = f"{session.REFERENCE_PREFIX}{reference.filename}"[:200]
    record = ReviewRecord(
        item_hash=item.item_hash,
        filename=item.filename,
        width=item.width,
        height=item.height,
        kind="region",
        reader=reader,
        model_set=layout.model_set(),
        label=reference.summary,
        mask=reference.region,
        geojson=mask_to_geojson(reference.region, {"reader": reader, "mpp": mpp}),
        scores=rows,
        mpp=mpp,
        note=(f"{reference.source} {reference.filename} (sha256 {reference.data_hash[:16]}) "
              f"imported by {importer}; region = labels above 0; {note}"),
    )
    try:
        result = engine.open_store(engine.database_url()).save_review(record)
    except (StoreError, ValueError) as err:
        st.error(f"The reference's scores were not stored ({err}); try again.")
        return
    session.saved_references()[key] = {"review_id": result.review_id, "version": result.version}


def reference_scores(item: CaseItem, reference: Reference, maps: dict[str, RegionMaps],
                     mpp: float, note: str, key: tuple) -> None:
    """Every model's maps scored against the reference, and the button that stores them."""
    st.subheader("Agreement with the reference")
    rows = engine.reference_scores(key, maps, reference.region)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="reference_scores")
    done = session.saved_references().get(key)
    # In a placeholder, so that the button is gone as soon as the scores are stored.
    slot = st.empty()
    if done is None and slot.button("Store the reference's scores", key="save_reference",
                                    icon=":material/database:"):
        save_reference(item, reference, mpp, rows, note, key)
        done = session.saved_references().get(key)
    if done is not None:
        slot.empty()
        st.success(f"Reference scores stored as review {done['review_id']}, version "
                   f"{done['version']} (reader {session.REFERENCE_PREFIX}"
                   f"{widgets.plain(reference.filename)}).")


def review_region(item: CaseItem, set_name: str, mpp: float | None) -> None:
    """The region's stitched maps side by side, the reference, the canvas and Save."""
    folder = engine.models_dir()
    models = engine.load_models(set_name, folder)
    class_names = list(next(iter(models.values())).meta.class_names)
    cam_class, alpha, cmap, shared = map_controls(class_names, region=True)
    bar = st.empty()

    def progress(fraction: float) -> None:
        bar.progress(fraction, text=f"Mapping the region tile by tile: {fraction:.0%}")

    try:
        maps = engine.region_maps(set_name, folder, item.item_hash, mpp, cam_class, item.rgb,
                                  progress)
    except RegionError as err:
        st.error(f"This region cannot be mapped: {err}")
        return
    finally:
        bar.empty()
    field = max(field_of_view_um(m.meta) for m in models.values())
    st.caption(
        f"{item.width} x {item.height} px at {mpp:g} µm/px "
        f"({item.width * mpp / 1000:.2f} x {item.height * mpp / 1000:.2f} mm), mapped in tiles "
        f"of {field:g} µm overlapping {engine.REGION_OVERLAP:.0%}; predictions are averaged "
        "over the region's pixels."
    )
    region_probability_table(maps, class_names)
    # What comes and goes above the canvas (a refusal, the reference's caption and scores) is
    # drawn into containers that are always there: an element added above the canvas would
    # move it in the page, and the canvas would be mounted again with its first drawing.
    with st.container():
        reference = reference_import(item)
    region = None if reference is None else reference.region
    titles = {name: engine.KIND_TITLES.get(m.kind, name) for name, m in models.items()}
    rows = widgets.region_panels(item.rgb, engine.region_layers(maps), titles,
                                 class_names[cam_class], alpha, cmap, shared, region)
    image = np.asarray(widgets.for_display(item.rgb, widgets.REGION_SIDE))
    header = ("region" if region is None else "region, reference outlined",
              image if region is None else widgets.outline(image, region))
    with st.container():
        widgets.show_region_grid(header, list(maps), rows)
    with st.container():
        if reference is not None:
            key = (set_name, folder, item.item_hash, mpp, cam_class, reference.data_hash)
            reference_scores(item, reference, maps, mpp, region_note(maps, mpp, class_names),
                             key)
    annotate(item, class_names, partial(save_region, item, maps, mpp, class_names))


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
        as_region, mpp = region_choice(item, name)
        if as_region:
            review_region(item, name, mpp)
            return
        outputs = engine.explain(name, engine.models_dir(), item.item_hash, item.rgb)
    except (lran_core.NoWeightsError, lran_core.CheckpointError) as err:
        st.error(str(err))
        return
    widgets.show_probabilities(outputs)
    target, alpha, cmap, shared = map_controls(outputs[0].class_names)
    panels = widgets.map_panels(item.rgb, outputs, target, alpha, cmap, shared)
    widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
    annotate(item, outputs[0].class_names, partial(save, item, outputs, target))


layout.page_setup("Review")
main()
