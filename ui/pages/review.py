"""Review: one case at a time. In a blinded study the reader sees only the image until their
unaided read is saved (diagnosis, confidence, region or "no region", note); it is locked, the
models' maps are revealed, and an aided read may follow. In an open study the maps are shown
from the start.

An image no larger than the models' patch is classified whole; a larger one is by default a
region, mapped at the µm/px the reader gives (prefilled from TIFF tags).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from annotations.records import ReviewRecord, StudyRecord
from annotations.store import StoreError
from review.items import ImageItem
from review.modelsets import CheckpointError, ModelSet, NoWeightsError
from review.mosaic import neighbourhood, placed
from review.records import Read, patch_record, region_record
from review.regions import RegionError
from review.scoring import configured_tolerance
from review.studies import (
    ENDED,
    WorkItem,
    Worklist,
    anonymised,
    label_set,
    maps_visible,
    visible,
    worklist,
)
from ui import auth, cache, server, sidebar, state, widgets
from ui.views import maps as maps_view
from ui.views import read
from ui.views.region import (
    reference_import,
    reference_scores,
    region_choice,
    region_maps,
    region_table,
)

WORKLIST_PAGE = "ui/pages/start.py"


def _move(list_: Worklist, step: int, reader: str, leaving: read.Case | None) -> None:
    if leaving is not None:
        read.keep_sent(leaving)
    # From the case in session state now, not the one rendered: three quick clicks on Next
    # move three cases.
    state.go_to(list_, list_.index_of(state.case_id(reader)) + step, reader)


def _next_unread(list_: Worklist, reader: str, leaving: read.Case | None) -> None:
    if leaving is not None:
        read.keep_sent(leaving)
    following = list_.next_unread(list_.index_of(state.case_id(reader)))
    if following is not None:
        state.go_to(list_, following, reader)


def navigation(list_: Worklist, index: int, reader: str, leaving: read.Case | None) -> None:
    """Previous / next / next unread (keys K, J, U) and where the reader is. ``leaving`` is the
    read on screen, whose last shape a move keeps (None when the case cannot be read)."""
    work = list_.items[index]
    # Wide enough for each button's label and key at 1280 px (the case line wraps instead).
    prev, middle, nxt, unread = st.columns([1.8, 5, 1.45, 2.2], vertical_alignment="center")
    prev.button(
        "Previous",
        key="prev",
        on_click=_move,
        args=(list_, -1, reader, leaving),
        disabled=index == 0,
        icon=":material/arrow_back:",
        shortcut="K",
        help="key K",
    )
    group, filename = list_.names(index)
    middle.markdown(
        f"**Case {index + 1} of {len(list_.items)}** · {widgets.plain(group)} · "
        f"{widgets.plain(filename)} · *{work.status}* · {list_.progress()}"
    )
    nxt.button(
        "Next",
        key="next",
        on_click=_move,
        args=(list_, 1, reader, leaving),
        disabled=index >= len(list_.items) - 1,
        icon=":material/arrow_forward:",
        shortcut="J",
        help="key J",
    )
    unread.button(
        "Next unread",
        key="next_unread",
        on_click=_next_unread,
        args=(list_, reader, leaving),
        disabled=list_.next_unread(index) is None,
        shortcut="U",
        help="key U",
        icon=":material/skip_next:",
        width="stretch",
    )


def context(list_: Worklist, work: WorkItem, item: ImageItem) -> None:
    """An IDC patch among the patches of its patient around it (from their file names)."""
    target = placed(item.filename, item.rgb)
    if target is None:
        return
    others = []
    for w in list_.items:
        if w.case.group == work.case.group and w.case.case_id != work.case.case_id:
            image = cache.case_image(w.case.item.item_hash, w.case.item.filename)
            found = None if image is None else placed(image.filename, image.rgb)
            if found is not None:
                others.append(found)
    mosaic = neighbourhood(target, others)
    if len(mosaic.boxes) == 1:
        return
    with st.expander(f"Tissue around this patch ({len(mosaic.boxes) - 1} neighbours here)"):
        box = np.zeros(mosaic.rgb.shape[:2], bool)
        x0, y0, x1, y1 = mosaic.boxes[0]
        box[y0:y1, x0:x1] = True
        shown = widgets.outline(np.asarray(widgets.for_display(mosaic.rgb, 320)), box)
        st.image(
            shown,
            caption="this patch outlined; grey: no patch of this patient in the "
            f"study; {mosaic.mpp:g} µm/px",
        )


def read_kind(study: StudyRecord, work: WorkItem) -> str:
    """Which read the reader makes now: 'open' in an open study; 'unaided' until it is saved
    in a blinded one, then 'aided'; 'closed' (none) when their blinding ended before it."""
    if not study.blinded:
        return "open"
    if work.status == ENDED:
        return "closed"
    return "aided" if work.unaided_id is not None else "unaided"


def build(
    item: ImageItem,
    study: StudyRecord,
    model_set: ModelSet,
    as_region: bool,
    mpp: float | None,
    reader: str,
    label: str,
    mask: np.ndarray,
    how: Read,
) -> ReviewRecord:
    """The record of a read: the region scored against every model's maps (computed now if
    they were hidden)."""
    if how.kind == "aided":
        # As it stands at the save: another tab may have ended the blinding since this page
        # was drawn (Compare names the models).
        ended = item.item_hash in cache.store(cache.database_url()).closed_images(reader)
        how = replace(how, visible=visible(study, how.kind, ended))
    if as_region:
        cam_class = st.session_state.get("region_class", len(model_set.class_names) - 1)
        if mpp is None:
            raise ValueError("give the image's µm/px first: the region's maps need it")
        try:
            result = cache.region_maps(model_set, item, float(mpp), int(cam_class))
        except RegionError as err:
            raise ValueError(f"the region cannot be mapped ({err})") from err
        return region_record(
            item,
            reader=reader,
            model_set=model_set.name,
            label=label,
            mask=mask,
            result=result,
            read=how,
            tolerance_um=configured_tolerance(),
        )
    outputs = cache.patch_maps(model_set, item)
    target = st.session_state.get("target") if how.kind != "unaided" else None
    return patch_record(
        item,
        reader=reader,
        model_set=model_set.name,
        label=label,
        mask=mask,
        outputs=outputs,
        target=target,
        read=how,
        tolerance_um=configured_tolerance(),
    )


def main() -> None:
    """The Review page."""
    person = auth.person()
    study = sidebar.study()
    if study is None and st.session_state.get("case_id") is not None:
        # A save that failed because the database went away still says so.
        read.outcome(int(st.session_state["case_id"]))
    if person is None or study is None:
        st.info("Enter your name as **Reader** in the sidebar (or sign in) to start reading.")
        return
    reader = person.name
    try:
        list_ = worklist(cache.store(cache.database_url()), study, reader)
    except StoreError as err:
        st.error(f"The review database cannot be read: {widgets.plain(server.reader_message(err))}")
        return
    if not list_.items:
        st.info("This study has no cases yet: add images on the Worklist page.")
        st.page_link(WORKLIST_PAGE, label="Worklist", icon=":material/list:")
        return
    index = list_.index_of(state.case_id(reader))
    state.go_to(list_, index, reader)
    work = list_.items[index]
    # The bar goes on top, drawn once the read on screen is known.
    bar = st.container()
    item = cache.case_image(work.case.item.item_hash, work.case.item.filename)
    if item is None:
        with bar:
            navigation(list_, index, reader, None)
        st.error(
            "This case's image was not kept (it was reviewed before studies kept images): "
            "add the image to the study again to read it."
        )
        return
    try:
        model_set: ModelSet | None = cache.model_set(study.model_set)
    except (NoWeightsError, CheckpointError) as err:
        model_set = None
        # The error names server folders: the operator finds it in the server log. Before the
        # unaided read of a blinded study, not even the set's name is shown.
        logged = server.log_for_operator(f"the study's models cannot be loaded: {err}")
        named = f" ({widgets.plain(study.model_set)})" if maps_visible(study, work) else ""
        st.error(
            f"The study's models{named} cannot be loaded, so reads cannot be scored. Tell the "
            f"operator of this server (reference {logged})."
        )
    if item.pages > 1:
        st.caption(f"This file has {item.pages} pages: page 1 is shown and read.")
    kind = read_kind(study, work)
    labels = label_set(study.label_set)
    models = list(model_set.models) if model_set else []
    letters = anonymised(study, work.case.case_id, reader, models)
    titles = (
        {model: f"Map {letter}" for letter, model in letters.items()}
        if study.anonymise
        else {model: model_set.title(model) for model in models}
        if model_set
        else {}
    )
    patch_side = model_set.patch_side if model_set else 50
    case = read.Case(reader, work.case.case_id, item, labels, kind)
    as_region, mpp = region_choice(item, patch_side, case, _unaided_scale(work, kind))
    with bar:
        navigation(list_, index, reader, case)
    how = Read(
        study_id=study.study_id,
        case_id=work.case.case_id,
        kind=kind,
        blinded=kind == "unaided",
        visible=visible(study, kind, work.blinding_ended is not None),
        parent_id=work.unaided_id if kind == "aided" else None,
        anonymised=letters if study.anonymise and kind != "unaided" else None,
        label_set=labels.name,
    )

    def best_map() -> None:
        if kind == "aided" and study.anonymise:
            key = read.widget_key(case, "best-map")
            st.pills(
                "Which map matches your region best?",
                list(letters),
                key=key,
                on_change=read.remember,
                args=(case, "best_map", key),
            )

    revealed = maps_visible(study, work) and model_set is not None
    maps, look, result, outputs = None, None, None, None
    if revealed:
        assert model_set is not None
        target, look = maps_view.controls(model_set.class_names, as_region)
        if as_region:
            result = region_maps(item, model_set, mpp, int(target or 0))
            maps = None if result is None else result.layers()
        else:
            outputs = cache.patch_maps(model_set, item)
            maps = maps_view.patch_rows(outputs, target)
    left, right = st.columns([3, 2])
    with right:
        if kind == "unaided":
            st.caption(
                "Blinded first read: the models' output stays hidden until you save. "
                "Draw in the image (zoom with the wheel; freehand strokes close "
                "themselves)."
            )
        elif kind == "aided":
            st.caption(
                "Your unaided read is saved and locked; the maps are revealed. You may "
                "save an aided read, linked to it."
            )
        elif kind == "closed":
            when = work.blinding_ended
            st.warning(
                "You chose to see others' reads of this image before reading it"
                + (f" ({when:%d %b %Y %H:%M} UTC)" if when else "")
                + ", on Compare or History (in this study or another). A read of it by you "
                "would not be blinded, so none can be saved."
            )
        if model_set is not None and kind != "closed":
            read.form(
                case,
                save=lambda: read.save_read(
                    case,
                    lambda r, lab, m, h: build(
                        item, study, model_set, as_region, mpp, r, lab, m, h
                    ),
                    how,
                ),
                extra=best_map,
            )
        read.outcome(case.case_id, titles, common_only=study.anonymise)
        reference = None
        if outputs is not None:
            widgets.show_probabilities(outputs, titles)
        if result is not None:
            assert model_set is not None
            region_table(result, titles)
            reference = reference_import(item)
            if reference is not None:
                reference_scores(
                    item,
                    reference,
                    model_set,
                    result,
                    reader,
                    (study.study_id, work.case.case_id),
                    titles,
                    common_only=study.anonymise,
                    may_store=person.admin,
                )
        context(list_, work, item)
    with left:
        viewer_key = read.viewer_key(case)
        state_ = maps_view.grid(
            item,
            maps,
            titles,
            look,
            mpp if as_region else item.mpp,
            read.drawing(case, viewer_key),
            maps_view.outlines(_saved_region(work) if revealed else None, reference),
            key=viewer_key,
            common_only=study.anonymise,
            draw=kind != "closed",
            # The reader's own view of this case: kept from the unaided read to the aided one,
            # never handed to the next reader in the tab or to the image in another study.
            view_key=f"{study.study_id}/{work.case.case_id}/{reader}",
        )
        read.drawn(case, state_)
        if revealed and kind == "aided":
            read.maps_shown(case)
        # Each model's badge is the same on every case: under letters it would name them.
        if revealed and model_set is not None and not study.anonymise:
            maps_view.quality_badges(model_set, titles)


def _unaided_scale(work: WorkItem, kind: str) -> tuple[bool, float | None] | None:
    """For an aided read: whether the unaided read mapped the image as a region, and at what
    µm/px (None for other reads, or when it cannot be read)."""
    if kind != "aided" or work.unaided_id is None:
        return None
    try:
        how, mpp = cache.store(cache.database_url()).read_scale(work.unaided_id)
    except (StoreError, KeyError):
        return None
    return how == "region", mpp


def _saved_region(work: WorkItem) -> np.ndarray | None:
    """The reader's last saved region of the case (None before any)."""
    last = work.aided_id or work.unaided_id
    if last is None:
        return None
    try:
        return cache.store(cache.database_url()).get_mask(last)
    except (StoreError, KeyError):
        return None


main()
