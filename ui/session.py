"""Per-session state: the case list built from uploads, and each item's review in progress.

Everything a reader has entered but not yet saved (drawn region, label, note) is kept here,
keyed by the item's content hash, so that it survives page switches, next/previous, and a
database that refuses a save.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import streamlit as st

from annotations.shapes import geojson_to_mask, label_mask_to_region, read_label_mask
from lran_core.data import ImageReadError, load_image, read_mpp

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff"]
REFERENCE_TYPES = ["png", "tif", "tiff", "geojson", "json"]
# BACH label masks: 0 is unannotated; every other value is an annotated class.
BACH_LABELS = {1: "benign", 2: "in situ", 3: "invasive"}
# Reader name of a review that stores an imported reference's region and scores.
REFERENCE_PREFIX = "reference:"


class Upload(Protocol):
    """What the pages need of an uploaded file (Streamlit's UploadedFile satisfies it)."""

    name: str

    def getvalue(self) -> bytes: ...


@dataclass(frozen=True)
class CaseItem:
    """One uploaded image, identified by the sha256 of its bytes.

    ``filename`` is what the reader uploaded it as: shown, stored, never used as a path.
    """

    item_hash: str
    filename: str
    rgb: np.ndarray
    mpp: float | None

    @property
    def width(self) -> int:
        """Width in image pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in image pixels."""
        return int(self.rgb.shape[0])


@dataclass(frozen=True)
class Reference:
    """An existing annotation imported for an item: a BACH label mask or a QuPath GeoJSON.

    ``region`` (bool, the image's pixels) is what the maps are scored against: every annotated
    pixel (labels above 0). ``summary`` names what was annotated, e.g. 'in situ + invasive'.
    """

    filename: str
    data_hash: str
    source: str
    region: np.ndarray
    summary: str


def read_reference(name: str, data: bytes, size: tuple[int, int]) -> Reference:
    """Reads a label mask (PNG/TIFF, BACH values 0-3) or a GeoJSON file (by its suffix) as the
    reference region of an image of ``size`` (width, height).

    Raises ValueError with the reason: unreadable, another size, unknown values, not a region.
    """
    digest = hashlib.sha256(data).hexdigest()
    if name.lower().endswith((".geojson", ".json")):
        try:
            geojson = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"not GeoJSON text ({err})") from None
        region = geojson_to_mask(geojson, size)
        return Reference(name, digest, "GeoJSON", region, "annotated region")
    labels = read_label_mask(data, size, (0, *BACH_LABELS))
    present = [BACH_LABELS[v] for v in sorted(set(np.unique(labels).tolist()) - {0})]
    return Reference(name, digest, "label mask", label_mask_to_region(labels),
                     " + ".join(present) or "nothing annotated")


def _bucket(name: str) -> dict[str, Any]:
    """A dict in session state that lives as long as the session (created on first use)."""
    if name not in st.session_state:
        st.session_state[name] = {}
    return st.session_state[name]


def items() -> dict[str, CaseItem]:
    """The case list, in upload order, keyed by content hash."""
    return _bucket("items")


def regions() -> dict[str, dict]:
    """Canvas drawings (streamlit-drawable-canvas json) per item hash, as last sent."""
    return _bucket("regions")


def canvas_seeds() -> dict[str, dict | None]:
    """The drawing each item's canvas was last mounted with (see the Review page)."""
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


def saved_references() -> dict[tuple, dict[str, Any]]:
    """Reference reviews stored in this session, by (item, reference file, model set, mpp,
    class): each is stored once per session, not again on every click."""
    return _bucket("saved_references")


def add_uploads(uploads: Iterable[Upload]) -> tuple[list[CaseItem], list[str]]:
    """Adds every readable upload to the case list; gives (new items, messages for refusals).

    A file already in the list (same bytes, whatever its name) is not added twice. A refused
    file is remembered by hash and name, so its message is shown again without decoding it again.
    """
    case = items()
    refused = _bucket("refused")
    added: list[CaseItem] = []
    messages: list[str] = []
    for upload in uploads:
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest in case:
            continue
        # Keyed with the name too: the message names the file as the reader uploaded it.
        refusal = f"{digest}:{upload.name}"
        if refusal not in refused:
            try:
                rgb = load_image(data, name=upload.name)
            except ImageReadError as err:
                refused[refusal] = str(err)
            except Exception as err:  # noqa: BLE001 (see below)
                # Uploads are untrusted: a decoder failure the reader did not anticipate must
                # refuse this one file by name, not stop the other uploads or the page.
                refused[refusal] = f"{upload.name}: could not be read ({type(err).__name__}: {err})"
            else:
                item = CaseItem(digest, upload.name, rgb, read_mpp(data))
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
