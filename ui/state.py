"""Per-session state: the case list built from uploads, and each item's review in progress.

Everything a reader has entered but not yet saved (drawn region, label) is kept here, keyed by
the item's content hash, so that it survives page switches, next/previous, and a database that
refuses a save.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import streamlit as st

from review.items import ImageItem, ImageReadError, Reference, content_hash, read_image


class Upload(Protocol):
    """What the pages need of an uploaded file (Streamlit's UploadedFile satisfies it)."""

    name: str

    def getvalue(self) -> bytes: ...


def _bucket(name: str) -> dict[Any, Any]:
    """A dict in session state that lives as long as the session (created on first use)."""
    if name not in st.session_state:
        st.session_state[name] = {}
    bucket: dict[Any, Any] = st.session_state[name]
    return bucket


def items() -> dict[str, ImageItem]:
    """The case list, in upload order, keyed by content hash."""
    return _bucket("items")


def regions() -> dict[str, dict[str, Any]]:
    """Canvas drawings (streamlit-drawable-canvas json) per item hash, as last sent."""
    return _bucket("regions")


def canvas_seeds() -> dict[str, dict[str, Any] | None]:
    """The drawing each item's canvas was last mounted with (see ui.views.annotate)."""
    return _bucket("canvas_seeds")


def labels() -> dict[str, str]:
    """The reader's diagnosis per item hash."""
    return _bucket("labels")


def saved() -> dict[str, dict[str, Any]]:
    """What the last successful save of each item returned (review id, version, score rows)."""
    return _bucket("saved")


def region_settings() -> dict[str, dict[str, Any]]:
    """Per item hash: whether it is reviewed as a region ("region") and at what microns per
    pixel ("mpp"), as the reader last set them."""
    return _bucket("region_settings")


def references() -> dict[str, Reference]:
    """The reference annotation imported for each item hash."""
    return _bucket("references")


def reference_errors() -> dict[str, str]:
    """Why the last reference file offered for an item was refused, per item hash."""
    return _bucket("reference_errors")


def saved_references() -> dict[tuple[Any, ...], dict[str, Any]]:
    """Reference reviews stored in this session, by (item, reference file, model set, mpp,
    class): each is stored once per session, not again on every click."""
    return _bucket("saved_references")


def add_uploads(uploads: Iterable[Upload]) -> tuple[list[ImageItem], list[str]]:
    """Adds every readable upload to the case list; gives (new items, messages for refusals).

    A file already in the list (same bytes, whatever its name) is not added twice, nor decoded
    again. A refused file is remembered by hash and name, so its message is shown again without
    decoding it again.
    """
    case = items()
    refused = _bucket("refused")
    added: list[ImageItem] = []
    messages: list[str] = []
    for upload in uploads:
        data = upload.getvalue()
        digest = content_hash(data)
        if digest in case:
            continue
        # Keyed with the name too: the message names the file as the reader uploaded it.
        refusal = f"{digest}:{upload.name}"
        if refusal not in refused:
            try:
                item = read_image(upload.name, data)
            except ImageReadError as err:
                refused[refusal] = str(err)
            else:
                case[digest] = item
                added.append(item)
                continue
        messages.append(refused[refusal])
    return added, messages


def current_index() -> int:
    """Index of the item under review, kept within the case list."""
    n = len(items())
    index = int(st.session_state.get("review_index", 0))
    return min(max(index, 0), max(n - 1, 0))


def set_index(index: int) -> None:
    """Moves the review to item ``index`` (clamped to the case list)."""
    st.session_state["review_index"] = min(max(index, 0), max(len(items()) - 1, 0))
