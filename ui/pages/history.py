"""History: the saved reads as a table with filters, and their exports. A reader sees their own
reads; an admin (and the one person of local mode) sees every reader's.

Exports (`review.exports`): the scores of the reviews shown (CSV), and regions as GeoJSON (QuPath
imports it: File > Import objects) and as PNG masks (white = region), one review or all shown
as a zip.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from annotations.store import StoreError
from review import exports
from ui import auth, cache, server, sidebar, widgets
from ui.views import blinding

SHOWN_COLUMNS = [
    "review_id",
    "filename",
    "kind",
    "reader",
    "read_kind",
    "blinded",
    "label",
    "confidence",
    "no_region",
    "version",
    "created_at",
    "note",
]


def filtered(reviews: pd.DataFrame) -> pd.DataFrame:
    """The filter widgets, and the reviews they let through."""
    c1, c2, c3, c4 = st.columns(4)
    readers = c1.multiselect("Reader", sorted(reviews["reader"].unique()), key="f_reader")
    sets = c2.multiselect("Read", sorted(reviews["read_kind"].unique()), key="f_set")
    labels = c3.multiselect("Label", sorted(reviews["label"].unique()), key="f_label")
    name = c4.text_input("File name contains", key="f_name")
    keep = pd.Series(True, index=reviews.index)
    if readers:
        keep &= reviews["reader"].isin(readers)
    if sets:
        keep &= reviews["read_kind"].isin(sets)
    if labels:
        keep &= reviews["label"].isin(labels)
    if name:
        keep &= reviews["filename"].str.contains(name, case=False, regex=False)
    return reviews[keep]


def export_buttons(shown: pd.DataFrame) -> None:
    """Downloads: scores CSV, one region, all shown regions.

    A click must not rerun the page: a rerun replaces the file the browser is about to fetch
    (Streamlit answers "Deferred file not found" and the download never ends)."""
    st.subheader("Export")
    url = cache.database_url()
    reads = tuple(
        (int(i), int(v), str(h))
        for i, v, h in zip(shown["review_id"], shown["version"], shown["item_hash"], strict=True)
    )
    ids = [r[0] for r in reads]
    st.download_button(
        "Scores of the reviews shown (CSV)",
        cache.export(url, "csv", reads),
        file_name="lran-review-scores.csv",
        mime="text/csv",
        key="csv",
        on_click="ignore",
        icon=":material/table:",
    )
    by_id = shown.set_index("review_id", drop=False)
    chosen = st.selectbox(
        "Region of review",
        ids,
        key="export_review",
        format_func=lambda i: (
            f"#{i} · {by_id.loc[i, 'filename']} · {by_id.loc[i, 'reader']} "
            f"· v{by_id.loc[i, 'version']} · {by_id.loc[i, 'label']}"
        ),
    )
    review = by_id.loc[chosen].to_dict()
    version, item_hash = int(review["version"]), str(review["item_hash"])
    one = ((int(chosen), version, item_hash),)
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        "GeoJSON (QuPath)",
        cache.export(url, "geojson", one),
        file_name=exports.region_name(chosen, version, item_hash, ".geojson"),
        mime="application/geo+json",
        key="geojson",
        on_click="ignore",
        icon=":material/polyline:",
    )
    c2.download_button(
        "PNG mask",
        cache.export(url, "png", one),
        file_name=exports.region_name(chosen, version, item_hash, ".png"),
        mime="image/png",
        key="png",
        on_click="ignore",
        icon=":material/image:",
    )
    c3.download_button(
        "All shown regions (zip)",
        cache.export(url, "zip", reads),
        file_name="lran-review-regions.zip",
        mime="application/zip",
        key="zip",
        on_click="ignore",
        icon=":material/folder_zip:",
    )


def main() -> None:
    """The History page."""
    st.title("History")
    person, study = auth.person(), sidebar.study()
    if person is None or study is None:
        st.info("Enter your name as **Reader** in the sidebar (or sign in) to see your reads.")
        return
    try:
        store = cache.store(cache.database_url())
        latest = st.toggle("Latest version of each read only", value=True, key="f_latest")
        reviews = store.reviews_frame(
            study_id=study.study_id,
            latest_only=latest,
            reader=None if person.admin else person.name,
        )
    except StoreError as err:
        st.error(f"The review database cannot be read: {widgets.plain(server.reader_message(err))}")
        return
    if reviews.empty:
        st.info(f"No reads saved in {widgets.plain(study.name)} yet: save some on the Review page.")
        return
    reviews = blinding.reads_shown(store, study, reviews, person, "f_unread")
    if reviews.empty:
        return
    shown = filtered(reviews)
    st.dataframe(shown[SHOWN_COLUMNS], hide_index=True, key="reviews")
    if shown.empty:
        st.info("No review matches the filters.")
        return
    export_buttons(shown)


main()
