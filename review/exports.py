"""What the History page offers for download, built from the store on demand.

Download names are built from review ids and content hashes, never from uploaded file names
(which are the reader's, and may hold anything).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable

import pandas as pd

from annotations.masks import mask_to_png
from annotations.store import Store


def region_name(review_id: int, version: int, item_hash: str, suffix: str) -> str:
    """A safe file name for one review's region, e.g. 'review-3-v2-d84f3db9c22f.geojson'."""
    return f"review-{int(review_id)}-v{int(version)}-{item_hash[:12]}{suffix}"


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_text(frame: pd.DataFrame) -> str:
    """A frame as CSV text that spreadsheets open as data: text cells that a spreadsheet would
    run as a formula (starting with = + - @, tab or carriage return) get a leading quote."""
    return frame.map(_cell).to_csv(index=False)


def scores_csv(store: Store, review_ids: Iterable[int]) -> str:
    """The score rows (one per review, model and map) of the given reviews, as CSV text."""
    scores = store.scores_frame()
    return csv_text(scores[scores["review_id"].isin(list(review_ids))])


def geojson_text(store: Store, review_id: int) -> str:
    """One review's region as GeoJSON text (a FeatureCollection QuPath imports)."""
    return json.dumps(store.get_geojson(review_id))


def mask_png(store: Store, review_id: int) -> bytes:
    """One review's region as a PNG mask (white = region)."""
    return mask_to_png(store.get_mask(review_id))


# Zip entries carry this time stamp (the format's earliest) rather than the time of the
# export: the same reads give the same bytes, so an export can be checked and kept.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def regions_zip(store: Store, reviews: Iterable[tuple[int, int, str]]) -> bytes:
    """Every given review (review_id, version, item_hash)'s region as GeoJSON and as PNG mask,
    in one zip; the same reviews give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for review_id, version, item_hash in reviews:
            for suffix, content in (
                (".geojson", geojson_text(store, int(review_id)).encode()),
                (".png", mask_png(store, int(review_id))),
            ):
                name = region_name(int(review_id), int(version), str(item_hash), suffix)
                entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, content)
    return buffer.getvalue()
