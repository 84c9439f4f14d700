"""Where a reader is (study, case), kept in the address bar and in the store, so a reload or a
new tab returns there; and the in-page state of the case under review."""

from __future__ import annotations

from typing import Any

import streamlit as st

from annotations.store import StoreError
from review.studies import Worklist
from ui import cache


def _store_place(reader: str | None) -> tuple[int, int | None] | None:
    if not reader:
        return None
    try:
        return cache.store(cache.database_url()).place(reader)
    except StoreError:
        return None


# Session state that belongs to one reader: their drafts and the widgets showing them, the
# viewer's drawing, the last save's message (with an aided read's scores), the references they
# stored, and where they are. The widgets' keys also name the reader (ui.views.read.widget_key):
# the browser sends a widget's last value back even after its key is dropped here.
READER_KEYS = ("viewer_seeds", "save_outcome", "saved_references", "case_id", "study_id")
READER_KEY_PREFIXES = (
    "draft-",
    "confidence-",
    "note-",
    "no-region-",
    "viewer-",
    "best-map-",
    "c_unread-",
    "f_unread-",
)


def hand_over(reader: str | None) -> None:
    """When another reader takes over this browser session (a new name typed, a sign-out and
    a sign-in), drops what the last reader left in session state: the next reader must not see
    another's diagnosis, region or scores, nor save them as their own, and goes back to their
    own place. Call once a run, with the reader known (None while nobody is)."""
    if reader is None or st.session_state.get("_state_reader") == reader:
        return
    if st.session_state.get("_state_reader") is not None:
        for key in list(st.session_state):
            if key in READER_KEYS or str(key).startswith(READER_KEY_PREFIXES):
                del st.session_state[key]
        st.query_params.pop("study", None)
        st.query_params.pop("case", None)
    st.session_state["_state_reader"] = reader


def study_id(reader: str | None) -> int | None:
    """The study in use: chosen in this session, else in the address bar, else where the
    reader last was."""
    if "study_id" not in st.session_state:
        from_url = st.query_params.get("study")
        if from_url and from_url.isdigit():
            st.session_state["study_id"] = int(from_url)
        else:
            place = _store_place(reader)
            st.session_state["study_id"] = place[0] if place else None
    value = st.session_state["study_id"]
    return None if value is None else int(value)


def set_study(study: int) -> None:
    """Moves to another study (its first case, or the reader's place in it)."""
    st.session_state["study_id"] = study
    st.session_state.pop("case_id", None)
    st.query_params["study"] = str(study)
    st.query_params.pop("case", None)


def case_id(reader: str | None) -> int | None:
    """The case under review: chosen in this session, else in the address bar, else where the
    reader last was in this study."""
    if "case_id" not in st.session_state:
        from_url = st.query_params.get("case")
        study = st.session_state.get("study_id")
        if from_url and from_url.isdigit():
            st.session_state["case_id"] = int(from_url)
        elif reader and study is not None:
            try:
                place = cache.store(cache.database_url()).place_in(reader, int(study))
            except StoreError:
                place = None
            st.session_state["case_id"] = place
        else:
            st.session_state["case_id"] = None
    value = st.session_state["case_id"]
    return None if value is None else int(value)


def go_to(worklist: Worklist, index: int, reader: str) -> None:
    """Moves to the case at ``index`` of the worklist (clamped), in the address bar and in the
    store (where a reload or a new tab will return)."""
    if not worklist.items:
        return
    index = min(max(index, 0), len(worklist.items) - 1)
    case = worklist.items[index].case.case_id
    st.session_state["case_id"] = case
    st.query_params["study"] = str(worklist.study.study_id)
    st.query_params["case"] = str(case)
    if reader:
        try:
            cache.store(cache.database_url()).set_place(reader, worklist.study.study_id, case)
        except StoreError:
            pass  # where the reader is matters less than what they read; saving reports errors


def bucket(name: str) -> dict[Any, Any]:
    """A dict in session state that lives as long as the session (created on first use)."""
    if name not in st.session_state:
        st.session_state[name] = {}
    found: dict[Any, Any] = st.session_state[name]
    return found
