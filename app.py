"""LRAN Review: a workbench in which pathologists review what a breast-histology classifier sees.

Run with ``streamlit run app.py``. This entry script sets the page up, draws the sidebar once
(its widgets live here, so their values outlive page switches) and routes to the pages in
``ui/pages``.
"""

from __future__ import annotations

import streamlit as st

from ui import sidebar

PAGES = [
    st.Page("ui/pages/start.py", title="Start", icon=":material/home:", default=True),
    st.Page("ui/pages/review.py", title="Review", icon=":material/draw:", url_path="review"),
    st.Page("ui/pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("ui/pages/history.py", title="History", icon=":material/history:", url_path="history"),
]

st.set_page_config(page_title="LRAN Review", page_icon=":microscope:", layout="wide")
page = st.navigation(PAGES)
sidebar.draw()
page.run()
