"""A region: whether (and at what µm/px) an image is reviewed as a region, every model's maps
over it with what they say about the whole region, and an imported reference annotation."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from annotations.records import ReviewRecord
from annotations.store import StoreError
from review.items import REFERENCE_TYPES, ImageItem, Reference, read_reference
from review.modelsets import ModelSet
from review.records import reference_record
from review.regions import RegionError, RegionResult
from review.scoring import configured_tolerance
from ui import cache, server, state, widgets
from ui.views import read


def region_choice(
    item: ImageItem,
    patch_side: int,
    case: read.Case,
    fixed: tuple[bool, float | None] | None = None,
) -> tuple[bool, float | None]:
    """The reader's say on whether the image is a region, and at how many µm per pixel.

    By default an image larger than the models' patch is a region, at the µm/px of its TIFF
    resolution tags (none for most PNGs: the reader types it); what the reader chose is kept
    in the read's draft (``as_region``, ``mpp``), so a reload brings it back and the next
    reader in the browser starts from their own. ``fixed`` (region or not, µm/px), the
    unaided read's, is shown and cannot be changed: the aided read is mapped and scored as the
    unaided one was.
    """
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    toggle_key, mpp_key = read.widget_key(case, "as-region"), read.widget_key(case, "mpp")
    current = read.draft(case)
    region, mpp = fixed or (
        bool(current.get("as_region", max(item.width, item.height) > patch_side)),
        current.get("mpp", item.mpp),
    )
    locked = "As your unaided read, which is saved and locked." if fixed else None
    left.toggle(
        "Review as a region (mapped at the models' resolution)",
        value=region,
        key=toggle_key,
        on_change=read.remember,
        args=(case, "as_region", toggle_key),
        disabled=fixed is not None,
        help=locked
        or "Off: the whole image is classified as one patch, shrunk to the models' input.",
    )
    if region:
        right.number_input(
            "µm/px of this image",
            value=mpp,
            step=0.01,
            format="%.3f",
            key=mpp_key,
            on_change=read.remember,
            args=(case, "mpp", mpp_key),
            disabled=fixed is not None,
            help=locked
            or "Micrometres per pixel. E.g. 0.47 for a 20x scan, 4.7 for a 10-fold "
            "downsized export. "
            + (
                "Read from the file's resolution tags."
                if item.mpp
                else "The file has no resolution tags."
            ),
        )
    return region, mpp


def region_maps(
    item: ImageItem, model_set: ModelSet, mpp: float | None, cam_class: int
) -> RegionResult | None:
    """The region's maps (computed once, cached), or None with the reason shown."""
    try:
        if mpp is None:
            raise RegionError(
                "microns per pixel of the image are unknown: give them (e.g. 0.47 for a 20x "
                "scan) or use a TIFF with resolution tags"
            )
        return cache.region_maps(model_set, item, float(mpp), cam_class)
    except RegionError as err:
        st.error(f"This region cannot be mapped: {widgets.plain(str(err))}")
        return None


def _reference_changed(item: ImageItem, key: str) -> None:
    upload = st.session_state.get(key)
    references, errors = state.bucket("references"), state.bucket("reference_errors")
    references.pop(item.item_hash, None)
    errors.pop(item.item_hash, None)
    if upload is None:
        return
    try:
        references[item.item_hash] = read_reference(
            upload.name, upload.getvalue(), (item.width, item.height)
        )
    except ValueError as err:
        errors[item.item_hash] = f"{upload.name}: {err}"


def reference_import(item: ImageItem) -> Reference | None:
    """The reference uploader, and the imported reference (or why the file was refused)."""
    key = f"reference-{item.item_hash[:16]}"
    st.file_uploader(
        "Reference annotation (optional): a label mask of this image's size (PNG or TIFF; 0 "
        "unannotated, 1 benign, 2 in situ, 3 invasive) or a QuPath GeoJSON export",
        type=list(REFERENCE_TYPES),
        key=key,
        on_change=_reference_changed,
        args=(item, key),
    )
    error = state.bucket("reference_errors").get(item.item_hash)
    if error:
        st.error(f"Reference not imported: {widgets.plain(error)}")
    reference: Reference | None = state.bucket("references").get(item.item_hash)
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
    item: ImageItem,
    reference: Reference,
    model_set: ModelSet,
    result: RegionResult,
    importer: str,
    study_id: int,
    case_id: int,
) -> ReviewRecord:
    """The reference's record with every map scored against it, once per (image, reference
    file, set, maps, importer, case): a megapixel region takes seconds to score."""
    return reference_record(
        item,
        reference,
        importer=importer,
        model_set=model_set.name,
        result=result,
        study_id=study_id,
        case_id=case_id,
        tolerance_um=configured_tolerance(),
    )


def reference_scores(
    item: ImageItem,
    reference: Reference,
    model_set: ModelSet,
    result: RegionResult,
    importer: str,
    where: tuple[int, int],
    titles: dict[str, str],
    common_only: bool = False,
    may_store: bool = True,
) -> None:
    """Every model's maps scored against the reference (with ``common_only``, only the maps
    every model has), and the button that stores them where ``may_store`` (an admin): stored,
    they are the study's reference for the image on Compare, for every reader."""
    st.subheader("Agreement with the reference")
    record = _reference_review(item, reference, model_set, result, importer, *where)
    table = read.score_table([s.__dict__ for s in record.scores], titles, common_only)
    st.dataframe(table, hide_index=True, key="reference_scores")
    key = (item.item_hash, reference.data_hash, model_set.name, result.mpp, result.cam_class, where)
    saved_references: dict[Any, dict[str, int]] = state.bucket("saved_references")
    done = saved_references.get(key)
    if done is None and not may_store:
        st.caption(
            "Scores against your file, not stored: an admin stores a reference's scores, as "
            "Compare measures every reader's reads against them."
        )
        return
    # In a placeholder, so that the button is gone as soon as the scores are stored.
    slot = st.empty()
    if done is None and slot.button(
        "Store the reference's scores", key="save_reference", icon=":material/database:"
    ):
        try:
            saved = cache.store(cache.database_url()).save_review(record)
        except (StoreError, ValueError) as err:
            shown = widgets.plain(server.reader_message(err))
            st.error(f"The reference's scores were not stored ({shown}).")
            return
        done = saved_references[key] = {"review_id": saved.review_id, "version": saved.version}
    if done is not None:
        slot.empty()
        st.success(
            f"Reference scores stored as read {done['review_id']}, version {done['version']} "
            f"(reader {widgets.plain(record.reader)})."
        )


def region_table(result: RegionResult, titles: dict[str, str]) -> None:
    """One row per model: what its probability map of the chosen class says about the whole
    region (area-weighted mean, maximum, share above 0.5): never "a prediction"."""
    rows = [
        {
            "model": titles[model],
            f"mean P({result.class_name}), area-weighted": s.mean,
            "maximum": s.maximum,
            "area above 0.5": s.share_above_half,
        }
        for model, s in sorted(result.summaries().items(), key=lambda e: list(titles).index(e[0]))
    ]
    st.table(pd.DataFrame(rows).set_index("model"))
