"""LRAN Review: a workbench in which pathologists review what a breast-histology classifier sees.

Run with ``streamlit run app.py``. This file has two roles. ``streamlit run`` finds the
``app = st.App(...)`` below (by reading this file), imports it as the module ``app`` and serves
that App: the hardened server of ``ui/server.py`` (allowed hosts, no tracebacks to readers,
the models loading while the server starts).
Each session then runs this file as ``__main__``: it sets the page up, draws the sidebar once
(its widgets live here, so their values outlive page switches) and routes to the pages in
``ui/pages``.
"""

from __future__ import annotations

import streamlit as st

from ui import server

if __name__ != "__main__":
    # Imported by the server: only the App, none of the page code (nor its imports).
    app = st.App(__file__, **server.app_options())
    server.start_warm_up()
else:
    from ui import sidebar

    PAGES = [
        st.Page("ui/pages/start.py", title="Worklist", icon=":material/list:", default=True),
        st.Page("ui/pages/review.py", title="Review", icon=":material/draw:", url_path="review"),
        st.Page(
            "ui/pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"
        ),
        st.Page(
            "ui/pages/history.py", title="History", icon=":material/history:", url_path="history"
        ),
    ]

    st.set_page_config(page_title="LRAN Review", page_icon=":microscope:", layout="wide")
    page = st.navigation(PAGES)
    sidebar.draw()
    page.run()
