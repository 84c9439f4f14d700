"""Worklist: the study's cases for this reader, progress, adding and removing cases, and new
studies. Opening a case goes to the Review page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from annotations.records import StudyRecord
from annotations.store import StoreError
from review import modelsets
from review.items import UPLOAD_TYPES
from review.studies import (
    LABEL_SETS,
    Worklist,
    add_images,
    add_patient_mosaic,
    label_set,
    worklist,
)
from ui import auth, cache, server, sidebar, state, widgets

PAGE_SIZE = 50
REVIEW_PAGE = "ui/pages/review.py"


def intro() -> None:
    """What the tool is, in two sentences."""
    st.title("LRAN Review")
    st.caption(
        "Read each case first, then see where three classifiers (a ResNet-18 base, R-RAN, "
        "R-LRAN) look and how their maps agree with your region. Research use only: not for "
        "diagnosis."
    )


def add_cases(study: StudyRecord, reader: str) -> None:
    """The uploader that adds images to the study as cases (kept in the store)."""
    with st.expander("Add images to this study", expanded=False):
        # A new uploader after each add: the files it held (and their bytes in this session)
        # are let go once they are kept in the store.
        round_ = st.session_state.get("upload_round", 0)
        uploads = st.file_uploader(
            "Patches or regions (PNG, JPEG or TIFF; several at once)",
            type=list(UPLOAD_TYPES),
            accept_multiple_files=True,
            key=f"uploads-{round_}",
        )
        if uploads and st.button("Add them", key="add_uploads", icon=":material/add:"):
            try:
                patch_side = cache.model_set(study.model_set).patch_side
            except (modelsets.NoWeightsError, modelsets.CheckpointError):
                patch_side = 50
            try:
                result = add_images(
                    cache.store(cache.database_url()),
                    study,
                    [(u.name, u.getvalue()) for u in uploads],
                    reader,
                    patch_side,
                )
            except (StoreError, ValueError) as err:
                st.error(f"Not added: {widgets.plain(server.reader_message(err))}")
                return
            for message in result.refused:
                st.error(f"Not added: {widgets.plain(message)}")
            st.session_state["upload_round"] = round_ + 1
            plural = "s" if len(result.added) != 1 else ""
            st.success(
                f"Added {len(result.added)} case{plural}{result.present_text(quote=widgets.plain)}."
            )
        st.caption(
            "An operator can add a server folder or zip: "
            "`lran-review study add-images --study NAME PATH`."
        )


def new_study(person: auth.Person) -> None:
    """A form for a new study (admins, and the one person of local mode)."""
    if not person.admin:
        return
    with st.expander("New study", expanded=False), st.form("new_study"):
        name = st.text_input("Name")
        labels = st.selectbox(
            "Label set",
            list(LABEL_SETS),
            format_func=lambda n: f"{n}: {', '.join(label_set(n).choices)}",
        )
        sets = modelsets.installed() or ["idc"]
        model_set = st.selectbox("Model set", sets)
        blinded = st.toggle(
            "Blinded first read",
            value=True,
            help="Predictions and maps stay hidden until the reader saves an "
            "unaided read of each case.",
        )
        anonymise = st.toggle(
            "Anonymise the revealed maps",
            value=False,
            help="Show the models' maps under letters, shuffled per case; "
            "the reader rates which matches their region best.",
        )
        if st.form_submit_button("Create study", type="primary"):
            try:
                created = cache.store(cache.database_url()).create_study(
                    name,
                    labels,
                    "blinded" if blinded else "open",
                    model_set,
                    anonymise,
                    person.name,
                )
            except (StoreError, ValueError) as err:
                st.error(widgets.plain(server.reader_message(err)))
                return
            state.set_study(created.study_id)
            st.rerun()


def open_case(list_: Worklist, index: int, reader: str) -> None:
    """Button callback: the case at ``index``, on the Review page."""
    state.go_to(list_, index, reader)
    st.session_state["_switch_to_review"] = True


def add_mosaic(study: StudyRecord, group: str, reader: str) -> None:
    """Button callback: a patient's IDC patches as one region case."""
    if not auth.still_allowed(admin=True):
        st.session_state["_mosaic_message"] = ("error", "Not added: only an admin adds cases.")
        return
    try:
        result = add_patient_mosaic(cache.store(cache.database_url()), study, group, reader, 50)
    except (StoreError, ValueError) as err:
        st.session_state["_mosaic_message"] = ("error", server.reader_message(err))
        return
    st.session_state["_mosaic_message"] = (
        ("success", f"Added the mosaic of {group} as a region case.")
        if result.added
        else ("info", f"The mosaic of {group} is in the study already.")
    )


def worklist_table(list_: Worklist, person: auth.Person) -> None:
    """The cases with thumbnail, group, status; a page at a time; open, and for an admin add
    a patient's mosaic and remove."""
    reader = person.name
    pages = max(1, -(-len(list_.items) // PAGE_SIZE))
    current = list_.index_of(state.case_id(reader))
    page = (
        st.number_input(
            f"Page (of {pages})", 1, pages, value=current // PAGE_SIZE + 1, key="worklist_page"
        )
        if pages > 1
        else 1
    )
    first = (page - 1) * PAGE_SIZE
    shown = range(first, min(first + PAGE_SIZE, len(list_.items)))
    rows = []
    for index in shown:
        w = list_.items[index]
        group, filename = list_.names(index)
        rows.append(
            {
                "#": index + 1,
                "image": cache.thumbnail(w.case.item.item_hash, w.case.item.filename),
                "group": group,
                "file": filename,
                "size": f"{w.case.item.width} x {w.case.item.height}",
                "status": w.status,
            }
        )
    event = st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        # A selection is of a row of this page of this list: a new page, or a case added or
        # removed, starts without one (Streamlit would keep the row number, now another case).
        key=f"worklist-{page}-{len(list_.items)}",
        on_select="rerun",
        selection_mode="single-row",
        column_config={"image": st.column_config.ImageColumn("image", width="small")},
    )
    picked = [i for i in (event.selection.rows if event else []) if i < len(shown)]
    if picked:
        index = (page - 1) * PAGE_SIZE + picked[0]
        chosen = list_.items[index]
        left, right = st.columns(2)
        left.button(
            f"Open case {index + 1}",
            key="open_case",
            type="primary",
            on_click=open_case,
            args=(list_, index, reader),
            icon=":material/draw:",
        )
        same = [w for w in list_.items if w.case.group == chosen.case.group]
        if person.admin and len(same) > 1 and chosen.case.group.startswith("patient "):
            st.button(
                f"Add the mosaic of {chosen.case.group}'s {len(same)} patches as a region case",
                key="add_mosaic",
                on_click=add_mosaic,
                args=(list_.study, chosen.case.group, reader),
                icon=":material/grid_view:",
                help="The patches placed by the x/y of their file names, gaps left empty, read "
                "as one region at 4 µm/px.",
            )
        if person.admin and right.button(
            "Remove from the study",
            key="remove_case",
            icon=":material/delete:",
            help="Its reads are kept; it leaves the worklist.",
        ):
            try:
                cache.store(cache.database_url()).remove_case(chosen.case.case_id, reader)
            except (StoreError, KeyError) as err:
                st.error(widgets.plain(server.reader_message(err)))
                return
            st.rerun()


def main() -> None:
    """The Worklist page."""
    intro()
    person = auth.person()
    study = sidebar.study()
    if study is None:
        return
    if person is None:
        st.info("Enter your name as **Reader** in the sidebar (or sign in) to start reading.")
        return
    mode = "blinded first read" if study.blinded else "open (maps visible)"
    labels = label_set(study.label_set)
    st.subheader(widgets.plain(study.name))
    st.caption(
        f"{mode} · labels: {', '.join(labels.choices)}"
        + ("" if study.blinded else f" · model set {widgets.plain(study.model_set)}")
    )
    # The worklist is drawn above the uploader but built after it, so new cases show at once.
    top = st.container()
    # Cases are the study's, shared by its readers: admins (and the one person of local mode)
    # add and remove them.
    if person.admin:
        add_cases(study, person.name)
    new_study(person)
    try:
        list_ = worklist(cache.store(cache.database_url()), study, person.name)
    except StoreError as err:
        top.error(
            f"The review database cannot be read: {widgets.plain(server.reader_message(err))}"
        )
        return
    message = st.session_state.pop("_mosaic_message", None)
    if message:
        getattr(top, message[0])(widgets.plain(message[1]))
    with top:
        if not list_.items:
            st.info(
                "This study has no cases yet: add images below."
                if person.admin
                else "This study has no cases yet: an admin adds them."
            )
        else:
            left, right = st.columns([3, 1], vertical_alignment="center")
            left.progress(list_.done / max(list_.to_read, 1), text=f"**{list_.progress()}**")
            following = list_.next_unread(list_.index_of(state.case_id(person.name)) - 1)
            right.button(
                "Next unread case"
                if following is not None
                else "Every case is read"
                if list_.to_read
                else "No case left to read",
                key="next_unread_start",
                type="primary",
                disabled=following is None,
                on_click=open_case,
                args=(list_, following or 0, person.name),
                icon=":material/arrow_forward:",
                width="stretch",
            )
            worklist_table(list_, person)
    if st.session_state.pop("_switch_to_review", False):
        st.switch_page(REVIEW_PAGE)


main()
