"""A region under review: whether (and at what µm/px) an image is reviewed as a region, every
model's stitched maps over it, an imported reference, and the reader's review."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from annotations.records import ReviewRecord
from annotations.store import StoreError
from review.items import REFERENCE_TYPES, ImageItem, Reference, read_reference
from review.modelsets import ModelSet
from review.records import reference_record, region_record
from review.regions import RegionError, RegionResult
from ui import cache, sidebar, state, widgets
from ui.views.annotate import annotate, score_table
from ui.views.patch import map_controls


def remember_setting(item_hash: str, name: str, key: str) -> None:
    """Region toggle / mpp change callback: keeps the setting beyond this page's widgets."""
    state.region_settings()[item_hash][name] = st.session_state[key]


def region_choice(item: ImageItem, model_set: ModelSet) -> tuple[bool, float | None]:
    """The reader's say on whether the item is a region, and at how many microns per pixel.

    By default an image larger than the models' patch is a region, at the mpp of its TIFF
    resolution tags (none for most PNGs: the reader types it).
    """
    settings = state.region_settings()
    if item.item_hash not in settings:
        settings[item.item_hash] = {
            "region": max(item.width, item.height) > model_set.patch_side,
            "mpp": item.mpp,
        }
    current = settings[item.item_hash]
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    toggle_key, mpp_key = f"as-region-{item.item_hash[:16]}", f"mpp-{item.item_hash[:16]}"
    left.toggle(
        "Review as a region (tiled at the models' resolution)",
        value=current["region"],
        key=toggle_key,
        on_change=remember_setting,
        args=(item.item_hash, "region", toggle_key),
        help="Off: the whole image is classified as one patch, shrunk to the models' input.",
    )
    if current["region"]:
        right.number_input(
            "µm/px of this image",
            value=current["mpp"],
            step=0.01,
            format="%.3f",
            key=mpp_key,
            on_change=remember_setting,
            args=(item.item_hash, "mpp", mpp_key),
            help="Microns per pixel. E.g. 0.47 for a 20x scan, 4.7 for a 10-fold downsized "
            "export. "
            + (
                "Read from the file's resolution tags."
                if item.mpp
                else "The file has no resolution tags."
            ),
        )
    return current["region"], current["mpp"]


def remember_reference(item: ImageItem, key: str) -> None:
    """Reference uploader change callback: reads the file (or forgets the reference when it is
    removed). A refused file leaves no reference, and says why."""
    upload = st.session_state.get(key)
    state.references().pop(item.item_hash, None)
    state.reference_errors().pop(item.item_hash, None)
    if upload is None:
        return
    try:
        reference = read_reference(upload.name, upload.getvalue(), (item.width, item.height))
    except ValueError as err:
        state.reference_errors()[item.item_hash] = f"{upload.name}: {err}"
    else:
        state.references()[item.item_hash] = reference


def reference_import(item: ImageItem) -> Reference | None:
    """The reference uploader, and the imported reference (or why the file was refused)."""
    key = f"reference-{item.item_hash[:16]}"
    st.file_uploader(
        "Reference annotation (optional): a label mask of this image's size (PNG or TIFF; 0 "
        "unannotated, 1 benign, 2 in situ, 3 invasive) or a QuPath GeoJSON export",
        type=list(REFERENCE_TYPES),
        key=key,
        on_change=remember_reference,
        args=(item, key),
    )
    error = state.reference_errors().get(item.item_hash)
    if error:
        st.error(f"Reference not imported: {widgets.plain(error)}")
    reference = state.references().get(item.item_hash)
    if reference is not None:
        st.caption(
            f"Reference: {widgets.plain(reference.filename)} ({reference.source}, "
            f"{reference.summary}): {int(reference.region.sum())} px annotated, outlined in "
            "white; every annotated pixel (labels above 0) counts as the region."
        )
    return reference


@st.cache_data(
    show_spinner="Scoring the maps against the reference…",
    max_entries=16,
    hash_funcs={**cache.HASH_FUNCS, RegionResult: id, Reference: lambda r: r.data_hash},
)
def _reference_review(
    item: ImageItem, reference: Reference, model_set: ModelSet, result: RegionResult, importer: str
) -> ReviewRecord:
    """The reference's record with every map scored against it, once per (image, reference
    file, set, maps, importer): a megapixel region takes seconds to score."""
    return reference_record(
        item, reference, importer=importer, model_set=model_set.name, result=result
    )


def reference_scores(
    item: ImageItem, reference: Reference, model_set: ModelSet, result: RegionResult
) -> None:
    """Every model's maps scored against the reference, and the button that stores them."""
    st.subheader("Agreement with the reference")
    importer = sidebar.reader()
    record = _reference_review(item, reference, model_set, result, importer or "?")
    st.dataframe(
        score_table([s.__dict__ for s in record.scores]), hide_index=True, key="reference_scores"
    )
    key = (item.item_hash, reference.data_hash, model_set.name, result.mpp, result.cam_class)
    done = state.saved_references().get(key)
    # In a placeholder, so that the button is gone as soon as the scores are stored.
    slot = st.empty()
    if done is None and slot.button(
        "Store the reference's scores", key="save_reference", icon=":material/database:"
    ):
        if not importer:
            st.warning("Enter your name as **Reader** in the sidebar before storing the reference.")
            return
        try:
            saved = cache.store(cache.database_url()).save_review(record)
        except (StoreError, ValueError) as err:
            st.error(
                f"The reference's scores were not stored ({widgets.plain(str(err))}); try again."
            )
            return
        done = state.saved_references()[key] = {
            "review_id": saved.review_id,
            "version": saved.version,
        }
    if done is not None:
        slot.empty()
        st.success(
            f"Reference scores stored as review {done['review_id']}, version "
            f"{done['version']} (reader {widgets.plain(record.reader)})."
        )


def region_table(result: RegionResult, model_set: ModelSet) -> None:
    """One row per model: what its probability map of the chosen class says about the whole
    region (area-weighted mean, maximum, share above 0.5)."""
    rows = [
        {
            "model": model_set.title(model),
            f"mean P({result.class_name}), area-weighted": s.mean,
            "maximum": s.maximum,
            "area above 0.5": s.share_above_half,
        }
        for model, s in result.summaries().items()
    ]
    st.table(pd.DataFrame(rows).set_index("model"))


def build(
    item: ImageItem,
    model_set: ModelSet,
    result: RegionResult,
    reader: str,
    label: str,
    mask: np.ndarray,
) -> ReviewRecord:
    """The record of the reader's review of a region."""
    return region_record(
        item, reader=reader, model_set=model_set.name, label=label, mask=mask, result=result
    )


def review_region(item: ImageItem, model_set: ModelSet, mpp: float | None) -> None:
    """The region's stitched maps side by side, the reference, the canvas and Save."""
    class_names = model_set.class_names
    cam_class, alpha, cmap, shared = map_controls(class_names, region=True)
    assert cam_class is not None
    try:
        if mpp is None:
            raise RegionError(
                "microns per pixel of the image are unknown: give them (e.g. 0.47 "
                "for a 20x scan) or use a TIFF with resolution tags"
            )
        result = cache.region_maps(model_set, item, float(mpp), cam_class)
    except RegionError as err:
        st.error(f"This region cannot be mapped: {widgets.plain(str(err))}")
        return
    st.caption(
        f"{item.width} x {item.height} px at {result.mpp:g} µm/px "
        f"({item.width * result.mpp / 1000:.2f} x {item.height * result.mpp / 1000:.2f} mm), "
        f"every {model_set.field_um():g} µm window classified, its centre moving by "
        f"{model_set.field_um() * (1 - result.overlap):g} µm; no tiles, no seams."
    )
    region_table(result, model_set)
    # What comes and goes above the canvas (a refusal, the reference's caption and scores) is
    # drawn into containers that are always there: an element added above the canvas would
    # move it in the page, and the canvas would be mounted again with its first drawing.
    with st.container():
        reference = reference_import(item)
    outline = None if reference is None else reference.region
    titles = {name: model_set.title(name) for name in result.maps}
    rows = widgets.region_panels(
        item.rgb, result.layers(), titles, result.class_name, alpha, cmap, shared, outline
    )
    image = np.asarray(widgets.for_display(item.rgb, widgets.REGION_SIDE))
    header = (
        "region" if outline is None else "region, reference outlined",
        image if outline is None else widgets.outline(image, outline),
    )
    with st.container():
        widgets.show_region_grid(header, list(result.maps), rows)
    with st.container():
        if reference is not None:
            reference_scores(item, reference, model_set, result)
    annotate(item, class_names, partial(build, item, model_set, result))
