"""The sidebar, drawn once by app.py for every page: who is reading, and in which study. Its
widgets live in the entry script, so their values outlive page switches."""

from __future__ import annotations

import streamlit as st

from annotations.records import StudyRecord
from annotations.store import StoreError
from review.studies import default_study
from ui import auth, cache, server, state, widgets


def draw() -> None:
    """Sign-in (or the reader's name) and the study chooser."""
    with st.sidebar:
        person = auth.sign_in()
        st.session_state["_person"] = person
        state.hand_over(person.name if person else None)
        try:
            store = cache.store(cache.database_url())
            studies = store.studies()
            if not studies:
                studies = [default_study(store)]
        except StoreError as err:
            st.error(
                f"The review database cannot be opened: {widgets.plain(server.reader_message(err))}"
            )
            return
        by_id = {s.study_id: s for s in studies}
        current = state.study_id(person.name if person else None)
        if current not in by_id:
            current = default_study(store).study_id
        # The study in use decides the chooser, not the other way round: a study created or
        # moved to elsewhere (state.set_study) shows here, set before the widget is drawn.
        st.session_state["study_choice"] = current
        st.selectbox(
            "Study",
            list(by_id),
            key="study_choice",
            format_func=lambda i: by_id[i].name,
            on_change=_chose_study,
        )
        chosen = by_id[current]
        # Loading starts here (or at server start) so that the first read does not wait for it.
        if not cache.warm_up(chosen.model_set).done():
            st.caption(":material/hourglass_top: The models are loading in the background.")


def _chose_study() -> None:
    state.set_study(int(st.session_state["study_choice"]))


def study() -> StudyRecord | None:
    """The study chosen in the sidebar (None when the database cannot be read)."""
    chosen = st.session_state.get("study_choice")
    if chosen is None:
        return None
    try:
        return cache.store(cache.database_url()).study(int(chosen))
    except (StoreError, KeyError):
        return None


def reader() -> str:
    """The signed-in reader's name ('' when nobody is known yet)."""
    person = auth.person()
    return person.name if person else ""
