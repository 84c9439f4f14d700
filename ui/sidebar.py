"""The sidebar, drawn once by app.py for every page: who is reviewing, and with which model
set. Its widgets live in the entry script, so their values outlive page switches."""

from __future__ import annotations

import streamlit as st

from review import modelsets


def draw() -> None:
    """The reader's name and the model set chooser."""
    with st.sidebar:
        st.text_input(
            "Reader",
            key="reader",
            placeholder="your name or initials",
            help="Stored with every review you save.",
        )
        sets = modelsets.installed()
        if sets:
            st.selectbox("Model set", sets, key="model_set")
        else:
            st.caption("Model set: none installed")


def reader() -> str:
    """The reader's name as entered, trimmed ('' when not entered)."""
    return (st.session_state.get("reader") or "").strip()


def model_set() -> str | None:
    """The chosen model set, None when no set is installed."""
    chosen = st.session_state.get("model_set")
    return chosen if chosen in modelsets.installed() else None
