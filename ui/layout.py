"""What every page starts with: page settings and the sidebar (reader, model set)."""

from __future__ import annotations

import streamlit as st

from ui import engine

# Sidebar widget keys whose values must outlive a page switch.
PERSISTENT_KEYS = ("reader", "model_set")
PAGES = {
    "app.py": ("Start", ":material/home:"),
    "pages/1_Review.py": ("Review", ":material/draw:"),
    "pages/2_Compare_RAN_vs_LRAN.py": ("Compare RAN vs LRAN", ":material/compare:"),
    "pages/3_History.py": ("History", ":material/history:"),
}


def page_setup(title: str) -> None:
    """Page settings, then the sidebar with who is reviewing and which model set is used.

    Streamlit forgets a widget's value when a page without that widget runs; every page draws
    the same sidebar, and re-assigning the keys first (Streamlit's documented idiom) keeps the
    values across the switch.
    """
    st.set_page_config(page_title=f"{title} · LRAN Review", page_icon=":microscope:",
                       layout="wide")
    for key in PERSISTENT_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    with st.sidebar:
        for path, (label, icon) in PAGES.items():
            st.page_link(path, label=label, icon=icon)
        st.divider()
        st.text_input(
            "Reader", key="reader", placeholder="your name or initials",
            help="Stored with every review you save.",
        )
        sets = engine.model_sets()
        if sets:
            if st.session_state.get("model_set") not in sets:
                st.session_state.pop("model_set", None)
            st.selectbox("Model set", sets, key="model_set")
        else:
            st.session_state["model_set"] = None
            st.caption("Model set: none installed")


def reader() -> str:
    """The reader's name as entered, trimmed ('' when not entered)."""
    return (st.session_state.get("reader") or "").strip()


def model_set() -> str | None:
    """The chosen model set, None when no set is installed."""
    return st.session_state.get("model_set")
