"""What of the reads a reader may see in a blinded study (Compare, History): nothing of others'
reads of a case before their own unaided read of it, and in an anonymised study nothing that
names the models before their aided read, unless an admin chooses to end their blinding."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from annotations.records import StudyRecord
from annotations.store import Store, StoreError
from review.studies import end_blinding, ended_items, not_yet_read
from ui import server, widgets
from ui.auth import Person


def reads_shown(
    store: Store, study: StudyRecord, reads: pd.DataFrame, person: Person, key: str
) -> pd.DataFrame:
    """The rows of a study's reads frame that ``person`` may see: in a blinded study, those of
    cases they have read (their own reads always) or whose blinding they ended. An admin may
    show the rest (a button under ``key``); that is recorded, and the cases among them they
    have not read unaided are closed to them on Review. The page says how many reads are left
    out."""
    try:
        ended = ended_items(store, study, person.name)
    except StoreError as err:
        st.error(f"The review database cannot be read: {widgets.plain(server.reader_message(err))}")
        return reads.iloc[:0]
    hidden = not_yet_read(study, reads, person.name, ended)
    if ended:
        n = len(ended)
        st.caption(
            f"Your blinding has ended for {n} image{'s' if n != 1 else ''} of this study (you "
            "chose to see others' reads of them, here or in another study): those you had not "
            "read unaided are closed to you on Review."
        )
    if not hidden.any():
        return reads
    cases = reads.loc[hidden, "item_hash"].nunique()
    # Anonymised: withheld until the aided read, so cases read unaided only are among them.
    not_yet = "without your aided read" if study.anonymise else "you have not read yet"
    if person.admin and st.button(
        f"Show the {cases} case{'s' if cases != 1 else ''} {not_yet}",
        # Per reader and study: a click in one study does not carry to another.
        key=f"{key}-{study.study_id}-{person.name}",
        help="Blinded study: others' reads, the file names and the models' verdicts on a case "
        "are hidden from you until your own unaided read of it (in an anonymised study, "
        "until your aided read). Showing them ends your blinding for those cases, for good: "
        "the ones you have not read unaided can no longer be read by you, as such a read "
        "would not be blinded.",
    ):
        try:
            end_blinding(store, study, person.name, reads)
        except StoreError as err:
            # Shown only once the record says so: an unrecorded look would leave later unaided
            # reads stored as blinded.
            st.error(
                "Your choice could not be recorded, so the reads stay hidden: "
                f"{widgets.plain(server.reader_message(err))}"
            )
            return reads[~hidden]
        # Drawn again from the record: the button gone, the page saying what was chosen.
        st.rerun()
    st.caption(
        f"{int(hidden.sum())} read{'s' if hidden.sum() != 1 else ''} of {cases} "
        f"case{'s' if cases != 1 else ''} {not_yet} "
        f"{'are' if hidden.sum() != 1 else 'is'} left out "
        + (
            "(anonymised study: until your aided read, which names no model)."
            if study.anonymise
            else "(blinded study)."
        )
        + (
            " Showing them ends your blinding for them, for good: you could no longer read "
            "the ones you have not read unaided."
            if person.admin
            else ""
        )
    )
    return reads[~hidden]
