"""What of the reads a reader may see in a blinded study (Compare, History): nothing of others'
reads of a case before their own unaided read of it, and in an anonymised study nothing that
names the models before their aided read, unless an admin chooses to end their blinding."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from annotations.records import StudyRecord
from review.studies import not_yet_read
from ui.auth import Person


def reads_shown(study: StudyRecord, reads: pd.DataFrame, person: Person, key: str) -> pd.DataFrame:
    """The rows of a study's reads frame that ``person`` may see: in a blinded study, those of
    cases they have read (their own reads always). An admin may show the rest (a toggle under
    ``key``), which ends their own blinding for those cases; the page says how many reads are
    left out."""
    hidden = not_yet_read(study, reads, person.name)
    if not hidden.any():
        return reads
    cases = reads.loc[hidden, "item_hash"].nunique()
    if person.admin and st.toggle(
        f"Show the {cases} case{'s' if cases != 1 else ''} you have not read yet",
        value=False,
        # Per reader and study: the next reader in this browser, or another study, starts
        # blinded again.
        key=f"{key}-{study.study_id}-{person.name}",
        help="Blinded study: others' reads, the file names and the models' verdicts on a case "
        "are hidden from you until your own unaided read of it (in an anonymised study, "
        "until your aided read). Showing them ends your blinding for those cases.",
    ):
        return reads
    st.caption(
        f"{int(hidden.sum())} read{'s' if hidden.sum() != 1 else ''} of {cases} "
        f"case{'s' if cases != 1 else ''} you have not read yet "
        f"{'are' if hidden.sum() != 1 else 'is'} left out "
        + (
            "(anonymised study: until your aided read, which names no model)."
            if study.anonymise
            else "(blinded study)."
        )
    )
    return reads[~hidden]
