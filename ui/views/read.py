"""The reader's read of a case: the diagnosis form and the drawing (made in the viewer, in image
pixels), kept as a draft in the store while it is being made (a reload or a new tab loses
nothing), and Save.

A read has a label from the study's label set, a confidence (1-5), a note, and a region, or an
explicit "no region" (its scores are then None, not 0, and comparisons leave it out). Saving
with an empty drawing asks once. Freehand strokes are closed by the viewer and shown filled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from annotations.records import ReviewRecord
from annotations.store import ReadRefused, StoreError
from review.drawing import polygons_to_mask
from review.items import ImageItem
from review.modelsets import display_name
from review.records import Read
from review.scoring import SCORE_INFO
from review.studies import LabelSet
from ui import auth, cache, server, widgets
from ui.components.viewer import ViewerState, sent_state

CONFIDENCE = {1: "1 guess", 2: "2", 3: "3", 4: "4", 5: "5 certain"}


@dataclass(frozen=True)
class Case:
    """What the read view needs to know of the case: the reader, the case's id and image, the
    study's labels, and which read this is ('unaided', 'aided' or 'open')."""

    reader: str
    case_id: int
    item: ImageItem
    labels: LabelSet
    kind: str


# A function that turns (reader, label, mask, read) into the record to store.
Build = Callable[[str, str, np.ndarray, Read], ReviewRecord]


def widget_key(case: Case, name: str) -> str:
    """The key of one of the read's widgets ('viewer', 'confidence', 'note', 'no-region',
    'best-map'): per case, kind of read and reader. The aided read's viewer is a new one, which
    starts from the aided draft (the unaided read's region), not from what the unaided read's
    viewer was first given; and the next reader in this browser gets new widgets, since the
    browser sends a widget's last value back even after its key is dropped from the session."""
    return f"{name}-{case.case_id}-{case.kind}-{case.reader}"


def viewer_key(case: Case) -> str:
    """The widget key of the case's viewer for this kind of read (see :func:`widget_key`)."""
    return widget_key(case, "viewer")


def _store() -> Any:
    return cache.store(cache.database_url())


def draft(case: Case) -> dict[str, Any]:
    """The draft of this read, from session state, else from the store (a reload), else
    empty. Kept in session state under the case, so widgets and callbacks share it."""
    key = f"draft-{case.case_id}-{case.kind}"
    if key not in st.session_state:
        stored = None
        try:
            stored = _store().draft(case.reader, case.case_id)
        except StoreError:
            pass
        stored = stored or {}
        if stored.get("kind") not in (None, case.kind) and case.kind == "aided":
            # The aided read starts from the unaided one: same label, region and note.
            stored = {**stored, "kind": "aided"}
        st.session_state[key] = dict(stored, kind=case.kind)
    found: dict[str, Any] = st.session_state[key]
    return found


def keep(case: Case, **changes: Any) -> None:
    """Updates the draft and writes it to the store (best effort: a failing database is
    reported when saving, not on every stroke)."""
    current = draft(case)
    current.update(changes)
    try:
        _store().save_draft(case.reader, case.case_id, current)
    except StoreError:
        pass


def _label_clicked(case: Case, label: str) -> None:
    keep(case, label=label)


def remember(case: Case, name: str, key: str) -> None:
    keep(case, **{name: st.session_state[key]})


def drawing(case: Case, viewer_key: str) -> list[Any] | None:
    """The drawing the viewer starts from: the draft's polygons (image pixels) when the viewer
    mounts, and the same ever after while it stays mounted. The viewer's own drawing is the
    truth meanwhile: sending back what it sent would overwrite a shape drawn since (a rerun's
    answer arrives after the next stroke) and reset its undo history."""
    seeds = st.session_state.setdefault("viewer_seeds", {})
    if viewer_key not in st.session_state:
        seeds[viewer_key] = draft(case).get("polygons")
    seed: list[Any] | None = seeds.get(viewer_key)
    return seed


def drawn(case: Case, state: ViewerState) -> None:
    """Keeps what the viewer sent back when it differs from the draft."""
    if not state.sent:
        return
    as_lists = [[list(v) for v in p] for p in state.polygons]
    if as_lists != (draft(case).get("polygons") or []):
        keep(case, polygons=as_lists)


def keep_sent(case: Case) -> None:
    """Keeps in the draft what the case's viewer sent in this run, for a callback that runs
    before the page draws the viewer (Save, another case): a shape drawn just before the click
    arrives in the same run, and the draft would otherwise get it only when the viewer is drawn
    again."""
    latest = sent_state(viewer_key(case))
    if latest is not None:
        drawn(case, latest)


def form(case: Case, save: Callable[[], None], extra: Callable[[], None] | None = None) -> None:
    """The diagnosis (one button per label, keys 1, 2, ...), confidence, note, no region, and
    Save (Ctrl+Enter)."""
    current = draft(case)
    st.markdown("**Your diagnosis**")
    choices = case.labels.choices
    # Long names ("IDC-negative") two to a row: three were cut to "IDC-ne…" at 1280 px; one
    # left over takes the whole row ("non-diagnostic / unsure").
    per_row = 2 if max(len(c) for c in choices) > 8 else 3
    columns = [
        c
        for start in range(0, len(choices), per_row)
        for c in st.columns(min(per_row, len(choices) - start))
    ]
    for i, (column, label) in enumerate(zip(columns, choices, strict=False), start=1):
        column.button(
            label,
            key=_label_key(case, i),
            width="stretch",
            type="primary" if current.get("label") == label else "secondary",
            on_click=_label_clicked,
            args=(case, label),
            shortcut=str(i),
            help=f"key {i}",
        )
    conf_key = widget_key(case, "confidence")
    if conf_key not in st.session_state and current.get("confidence"):
        st.session_state[conf_key] = current["confidence"]
    st.segmented_control(
        "Confidence",
        list(CONFIDENCE),
        format_func=CONFIDENCE.__getitem__,
        key=conf_key,
        on_change=remember,
        args=(case, "confidence", conf_key),
    )
    note_key = widget_key(case, "note")
    if note_key not in st.session_state:
        st.session_state[note_key] = current.get("note", "")
    st.text_area(
        "Note",
        key=note_key,
        height=68,
        on_change=remember,
        args=(case, "note", note_key),
        placeholder="optional",
    )
    none_key = widget_key(case, "no-region")
    if none_key not in st.session_state:
        st.session_state[none_key] = bool(current.get("no_region"))
    st.checkbox(
        "No region: nothing here to outline",
        key=none_key,
        on_change=remember,
        args=(case, "no_region", none_key),
    )
    if extra is not None:
        extra()
    title = {"unaided": "Save unaided read", "aided": "Save aided read"}.get(case.kind, "Save read")
    st.button(
        title,
        type="primary",
        icon=":material/save:",
        key=f"save-{case.kind}",
        shortcut="Ctrl+Enter",
        on_click=save,
        width="stretch",
    )


def _label_key(case: Case, number: int) -> str:
    return f"label-{case.case_id}-{number}"


def _label_now(case: Case) -> None:
    """Keeps in the draft a diagnosis button pressed in this run. When 2 and Ctrl+Enter arrive
    while a rerun is going, Streamlit merges the two requests and puts the button's trigger
    after Save's (``_coalesce_widget_states`` appends a kept trigger), so Save's callback runs
    before the button's. Other widgets keep their order."""
    for number, label in enumerate(case.labels.choices, start=1):
        if st.session_state.get(_label_key(case, number)) and draft(case).get("label") != label:
            keep(case, label=label)


def maps_shown(case: Case) -> None:
    """Notes when the page has finished showing the maps of this aided read (the first time
    in this session): the aided save waits :func:`ui.server.aided_wait_s` from then."""
    st.session_state.setdefault("maps_shown", {}).setdefault(
        (case.reader, case.case_id), time.monotonic()
    )


def _content(current: dict[str, Any]) -> str:
    """What a save stores of the draft, to tell a repeated save from a new one."""
    keys = ("label", "polygons", "confidence", "note", "no_region", "best_map", "as_region", "mpp")
    return json.dumps({k: current.get(k) for k in keys}, sort_keys=True, default=str)


# A Save of the same read this soon after the last is the key pressed twice, not a new version
# (later, the same content may be saved again on purpose: another CAM class, another tab).
REPEAT_S = 3.0


def _repeated(case: Case, current: dict[str, Any]) -> bool:
    """Whether this Save repeats the last one of this session on the case: the unaided Save
    pressed again before the page turned to the aided read (the store would refuse it), or
    the same read within :data:`REPEAT_S`."""
    last = st.session_state.get("last_saved", {}).get((case.reader, case.case_id))
    if last is None or last["kind"] != case.kind:
        return False
    if case.kind == "unaided":
        return True
    return last["content"] == _content(current) and time.monotonic() - last["at"] < REPEAT_S


def _too_soon(case: Case) -> str | None:
    """Why an aided read may not be saved yet (the maps not shown long enough), or None."""
    if case.kind != "aided":
        return None
    wait = server.aided_wait_s()
    shown = st.session_state.get("maps_shown", {}).get((case.reader, case.case_id))
    if wait == 0 or (shown is not None and time.monotonic() - shown >= wait):
        return None
    return (
        "Not saved: the maps have only just appeared. Look at them, then save your aided "
        "read (the unaided read is saved and locked)."
    )


def save_read(case: Case, build: Build, read: Read) -> None:
    """Save button callback: checks the read, builds its record (scores included) and stores
    it in one transaction; the outcome (or why not) is kept for the page to show. A save that
    repeats the last one (a key pressed twice) stores nothing and keeps its outcome; an aided
    read waits until the maps have been shown for :func:`ui.server.aided_wait_s`."""
    outcome = st.session_state.setdefault("save_outcome", {})
    keep_sent(case)
    _label_now(case)
    if not auth.still_allowed():
        # The stored draft keeps the read for when the account is enabled again; the page
        # then signs the account out and says why.
        keep(case)
        outcome[case.case_id] = ("error", "Not saved: this account is no longer enabled.")
        return
    current = draft(case)
    if _repeated(case, current):
        return
    outcome.pop(case.case_id, None)
    if (why := _too_soon(case)) is not None:
        outcome[case.case_id] = ("warning", why)
        return
    label = current.get("label")
    if not label:
        outcome[case.case_id] = ("warning", "Choose your diagnosis before saving.")
        return
    try:
        mask = polygons_to_mask(current.get("polygons"), (case.item.width, case.item.height))
    except ValueError as err:
        outcome[case.case_id] = ("error", f"The drawing cannot be turned into a region: {err}")
        return
    no_region = bool(current.get("no_region"))
    if no_region and mask.any():
        # "No region" may come from the unaided read; a region drawn since is not thrown away.
        outcome[case.case_id] = (
            "warning",
            "You drew a region but ticked **No region**: untick it to save the region, or "
            "clear the drawing.",
        )
        return
    if not no_region and not mask.any():
        # Asked once: an empty drawing is saved only as an explicit "no region".
        outcome[case.case_id] = (
            "warning",
            "Your region is empty. Draw it, or tick **No region** and save again "
            "(a read without a region is stored as such and left out of comparisons).",
        )
        return
    confidence = current.get("confidence")
    read = Read(
        **{
            **read.__dict__,
            "confidence": int(confidence) if confidence else None,
            "note": (current.get("note") or "").strip() or None,
            "no_region": no_region,
            "best_map": current.get("best_map"),
        }
    )
    try:
        record = build(case.reader, label, mask, read)
        saved = _store().save_review(record)
    except ReadRefused as err:
        # Nothing to solve and save again: the page turns to what this reader may still do.
        outcome[case.case_id] = ("error", f"Not saved: {server.reader_message(err)}.")
        return
    except (StoreError, ValueError) as err:
        outcome[case.case_id] = (
            "error",
            f"Not saved: {server.reader_message(err)}. Your region and diagnosis are kept; "
            "save again once the problem is solved.",
        )
        return
    try:
        # The next read starts from what was just saved, as the form still shows it: the
        # aided read from the unaided one, a corrected read from the one it corrects.
        _store().save_draft(case.reader, case.case_id, current)
    except StoreError:
        pass
    st.session_state.setdefault("last_saved", {})[(case.reader, case.case_id)] = {
        "kind": case.kind,
        "content": _content(current),
        "at": time.monotonic(),
    }
    outcome[case.case_id] = (
        "success",
        f"Saved as read {saved.review_id}, version {saved.version} "
        + ("(no region)." if no_region else f"(region of {_area(int(mask.sum()), record.mpp)})."),
        [s.__dict__ for s in record.scores] if case.kind != "unaided" else None,
        float(mask.mean()),
    )


def _area(pixels: int, mpp: float | None) -> str:
    """A region's area: in mm² (from 0.01 mm²) or µm² where the µm/px are known, and in px."""
    if mpp is None:
        return f"{pixels:,} px"
    um2 = pixels * mpp**2
    size = f"{um2 / 1e6:.2f} mm²" if um2 >= 1e4 else f"{um2:,.0f} µm²"
    return f"{size}, {pixels:,} px"


def outcome(case_id: int, titles: dict[str, str] | None = None, common_only: bool = False) -> None:
    """The last save's message for a case (replaced by the next save's), its scores with the
    models under ``titles`` (letters in an anonymised study; default: display names); with
    ``common_only``, only the maps every model has (see :func:`score_table`)."""
    found = st.session_state.get("save_outcome", {}).get(case_id)
    if not found:
        return
    kind, message = found[0], found[1]
    getattr(st, kind)(widgets.plain(message) if kind == "error" else message)
    if len(found) > 2 and found[2]:
        st.dataframe(score_table(found[2], titles, common_only), hide_index=True, width="stretch")
        with st.expander("What the scores mean"):
            st.markdown(score_help(found[3] if len(found) > 3 else None))


def score_table(
    rows: list[dict[str, Any]], titles: dict[str, str] | None = None, common_only: bool = False
) -> pd.DataFrame:
    """Score rows as a reader reads them: models by their title (``titles``; default: display
    name), scores by plain name, the class each CAM was scored for, and the pointing game's
    tolerance. ``common_only``: only the maps every model has (an anonymised study: attention
    and gates would name the letters)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if common_only:
        maps = [set(group) for _, group in frame.groupby("model")["map"]]
        frame = frame[frame["map"].isin(set.intersection(*maps))].copy()
    frame["model"] = frame["model"].map(titles or display_name)
    frame["tolerance"] = [
        f"{um:g} µm" if um is not None and um == um else f"{px:.1f} px"
        for um, px in zip(frame["tolerance_um"], frame["tolerance_px"], strict=True)
    ]
    columns = ["model", "map", "cam_class", *SCORE_INFO, "tolerance"]
    return frame[columns].rename(
        columns={"cam_class": "class", **{n: i.label for n, i in SCORE_INFO.items()}}
    )


def score_help(region_share: float | None = None) -> str:
    """One line per score: what it means and its chance level (with the region's share of the
    image, the chance level of energy, when known)."""
    lines = [f"**{info.label}**: {info.explanation}" for info in SCORE_INFO.values()]
    if region_share is not None:
        lines.append(
            f"Your region covers {region_share:.1%} of the image: energy above that "
            "is better than chance."
        )
    return "  \n".join(lines)
