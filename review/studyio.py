"""A study as one zip, for analysis and for moving it: export, and import into an empty database.

The zip holds:

- ``reads.csv``: one row per read (study, case, group, file, reader, read kind, blinded, what was
  visible, label, confidence, no region, region area in px and µm², model set, and every score
  as a column ``<model>/<map>/<score>``, plus the class each CAM was scored for as
  ``<model>/<map>/cam_class``); text cells that a spreadsheet would run as a formula are quoted;
- ``regions/read-<id>.geojson``: each read's region in the image's pixels (QuPath imports them);
- ``study.json``: the study, its cases, its reads with predictions and scores, and whose
  blinding ended for which cases (``unblindings``; an export without it had none recorded):
  everything an import needs;
- ``images/<sha256>``: every case's image as it was added; a case whose image was never kept
  (a first-release review's, in the study "Reviews before studies") has none, and says so in
  study.json (``"image_kept": false``; an export without the field had every image).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from annotations.geojson import geojson_to_mask
from annotations.records import (
    ItemRecord,
    ReviewRecord,
    ScoreRecord,
    StudyRecord,
    check_item,
    check_text,
    validate,
)
from annotations.schema import NAME_LENGTH
from annotations.scores import SCORE_NAMES
from annotations.store import FIRST_RELEASE_STUDY, ReadRefused, Store
from review.exports import csv_text

FORMAT = "lran-review-study/1"


def _opt(value: Any, cast: Any = None) -> Any:
    """None for a missing value (None, NaN, NA), else the value (cast when given)."""
    if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
        return None
    return cast(value) if cast is not None else value


def _iso(value: datetime | None) -> str | None:
    """An ISO 8601 time with its offset (a naive one is UTC, as the store keeps times)."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _study_reads(
    store: Store, study: StudyRecord
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    reads = store.reviews_frame(study_id=study.study_id)
    scores = store.scores_frame(study_id=study.study_id)
    predictions = store.predictions_frame(study_id=study.study_id)
    return reads, scores, predictions


def _score_rows(scores: pd.DataFrame, review_id: int) -> list[dict[str, Any]]:
    """A read's score rows as plain values (the fields of ScoreRecord)."""
    out = []
    for s in _rows(scores[scores["review_id"] == review_id]):
        out.append(
            {
                "model": s["model"],
                "map": s["map"],
                "cam_class": _opt(s["cam_class"]),
                "tolerance_px": _opt(s["tolerance_px"], float),
                "tolerance_um": _opt(s["tolerance_um"], float),
                **{n: _opt(s[n], bool if n == "pointing_game" else float) for n in SCORE_NAMES},
            }
        )
    return out


def reads_table(store: Store, study: StudyRecord) -> pd.DataFrame:
    """One row per read of the study (see the module doc for the columns)."""
    reads, scores, _ = _study_reads(store, study)
    cases = {c.case_id: c for c in store.cases(study.study_id, removed=True)}
    rows = []
    for read in _rows(reads):
        mask = store.get_mask(int(read["review_id"]))
        area = int(mask.sum())
        case = cases.get(_opt(read["case_id"], int) or -1)
        mpp = _opt(read["mpp"], float)
        row: dict[str, Any] = {
            "study": study.name,
            "read_id": int(read["review_id"]),
            "case_id": None if case is None else case.case_id,
            "group": None if case is None else case.group,
            "file": read["filename"],
            "image_hash": read["item_hash"],
            "reader": read["reader"],
            "read_kind": read["read_kind"],
            "blinded": bool(read["blinded"]),
            "visible": "+".join(read["visible"] or []),
            "label": read["label"],
            "confidence": _opt(read["confidence"], int),
            "no_region": bool(read["no_region"]),
            "region_px": area,
            "mpp": mpp,
            "region_um2": None if mpp is None else area * mpp**2,
            "model_set": read["model_set"],
            "version": int(read["version"]),
            "parent_read_id": _opt(read["parent_id"], int),
            "best_map": _opt(read["best_map"]),
            "note": _opt(read["note"]),
            "created_at": read["created_at"].isoformat(),
        }
        for score in _score_rows(scores, int(read["review_id"])):
            prefix = f"{score['model']}/{score['map']}"
            row[f"{prefix}/cam_class"] = score["cam_class"]
            for name in SCORE_NAMES:
                row[f"{prefix}/{name}"] = score[name]
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("case_id", "confidence", "parent_read_id"):
        if column in frame:
            # Whole numbers with gaps: nullable integers, not floats, in the CSV.
            frame[column] = frame[column].astype("Int64")
    return frame


def export_study(store: Store, study: StudyRecord) -> bytes:
    """The study as a zip (see the module doc). ValueError when a case's image is missing from
    the store (other than a first-release review's, never kept)."""
    reads, scores, predictions = _study_reads(store, study)
    cases = store.cases(study.study_id, removed=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("reads.csv", csv_text(reads_table(store, study)))
        records = []
        for read in _rows(reads):
            review_id = int(read["review_id"])
            geojson = store.get_geojson(review_id)
            archive.writestr(f"regions/read-{review_id}.geojson", json.dumps(geojson))
            records.append(
                {
                    "read_id": review_id,
                    "case_id": _opt(read["case_id"], int),
                    "item_hash": read["item_hash"],
                    "reader": read["reader"],
                    "model_set": read["model_set"],
                    "label": read["label"],
                    "version": int(read["version"]),
                    "kind": read["kind"],
                    "created_at": read["created_at"].isoformat(),
                    "note": _opt(read["note"]),
                    "mpp": _opt(read["mpp"], float),
                    "overlap": _opt(read["overlap"], float),
                    "is_reference": bool(read["is_reference"]),
                    "imported_by": _opt(read["imported_by"]),
                    "read_kind": read["read_kind"],
                    "blinded": bool(read["blinded"]),
                    "visible": list(read["visible"] or []),
                    "confidence": _opt(read["confidence"], int),
                    "no_region": bool(read["no_region"]),
                    "parent_id": _opt(read["parent_id"], int),
                    "anonymised": _opt(read["anonymised"]),
                    "best_map": _opt(read["best_map"]),
                    "label_set": _opt(read["label_set"]),
                    "geojson": geojson,
                    "predictions": {
                        str(p["model"]): dict(p["probabilities"])
                        for p in _rows(predictions[predictions["review_id"] == review_id])
                    },
                    "scores": _score_rows(scores, review_id),
                }
            )
        kept: dict[str, bool] = {}
        for case in cases:
            data = store.image_bytes(case.item.item_hash)
            # A first-release review's image was never kept: the case says so, and an import
            # restores it without its image. Any other case's image is lost from the store (a
            # database copied without its blobs folder): that is refused, not exported as such.
            if data is None and study.name != FIRST_RELEASE_STUDY:
                raise ValueError(
                    f"the image of case {case.case_id} ({case.item.filename}) is missing from "
                    f"{store.blobs.describe()}: restore it before exporting the study"
                )
            kept[case.item.item_hash] = data is not None
            if data is not None:
                archive.writestr(f"images/{case.item.item_hash}", data)
        archive.writestr(
            "study.json",
            json.dumps(
                {
                    "format": FORMAT,
                    "study": {
                        "name": study.name,
                        "label_set": study.label_set,
                        "blinding": study.blinding,
                        "anonymise": study.anonymise,
                        "model_set": study.model_set,
                        "created_by": study.created_by,
                        "created_at": _iso(study.created_at),
                    },
                    "cases": [
                        {
                            "case_id": c.case_id,
                            "position": c.position,
                            "group": c.group,
                            "removed": c.removed,
                            "item": c.item.__dict__,
                            "image_kept": kept[c.item.item_hash],
                            "added_at": _iso(c.added_at),
                            "added_by": c.added_by,
                            "removed_at": _iso(c.removed_at),
                            "removed_by": c.removed_by,
                        }
                        for c in cases
                    ],
                    "reads": records,
                    "unblindings": [
                        {"reader": reader, "case_id": case_id, "at": _iso(at)}
                        for reader, ended in store.blinding_ended(study.study_id).items()
                        for case_id, at in ended.items()
                    ],
                },
                indent=1,
            ),
        )
    return buffer.getvalue()


class _Refused(ValueError):
    """An export refused with a message that already says why (not wrapped again)."""


_REQUIRED = object()
_NONE = type(None)


def _field(source: Any, key: str, *types: type, default: Any = _REQUIRED) -> Any:
    """``source[key]``, which must be an instance of one of ``types`` (a bool only where bool
    is among them); ``default`` where the key is missing and a default is given. KeyError for
    a missing key, TypeError for a value of another type."""
    if not isinstance(source, dict):
        raise TypeError(f"expected an object, got {type(source).__name__}")
    if key not in source:
        if default is _REQUIRED:
            raise KeyError(key)
        return default
    value = source[key]
    # bool is an int to isinstance: a flag where a number belongs is malformed too.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join("null" if t is _NONE else t.__name__ for t in types)
        raise TypeError(f"{key!r} is {type(value).__name__}, not {wanted}")
    return value


def _time(source: Any, key: str, optional: bool = False) -> datetime | None:
    """An ISO 8601 time of ``source[key]`` (None where ``optional`` and missing or null)."""
    if optional:
        value = _field(source, key, str, _NONE, default=None)
        return None if value is None else datetime.fromisoformat(value)
    return datetime.fromisoformat(_field(source, key, str))


@contextmanager
def _malformed(where: str = "") -> Iterator[None]:
    """Turns what reading study.json can raise (KeyError, TypeError, ValueError,
    AttributeError) into one ValueError "a malformed study.json (<where>: <why>)"."""
    try:
        yield
    except _Refused:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        why = f"no field {err.args[0]!r}" if isinstance(err, KeyError) and err.args else str(err)
        raise _Refused(
            f"a malformed study.json ({where}: {why})"
            if where
            else f"a malformed study.json ({why})"
        ) from None


def _where(kind: str, entry: Any, key: str, index: int) -> str:
    """How an error names a case or read: by its id in the export, else by its place."""
    found = entry.get(key) if isinstance(entry, dict) else None
    return f"{kind} {found}" if isinstance(found, int) else f"{kind} at index {index}"


def _item(source: dict[str, Any]) -> ItemRecord:
    """A case's item as an ItemRecord, checked as the store checks it."""
    item = ItemRecord(**source)
    check_item(item)
    return item


@dataclass(frozen=True)
class _Case:
    """A case of the export, ready to restore: ``image`` is the zip member with its bytes,
    None when its bytes were never kept; ``case_id`` is the export's id."""

    case_id: int
    item: ItemRecord
    group: str
    image: str | None
    added_at: datetime | None
    added_by: str | None
    removed: bool
    removed_at: datetime | None
    removed_by: str | None


@dataclass(frozen=True)
class _Read:
    """A read of the export, ready to save: ``record`` still has the export's case and parent
    ids (``case_id``, ``parent_id``), mapped to the new ones at writing."""

    read_id: int
    case_id: int | None
    parent_id: int | None
    record: ReviewRecord


@dataclass(frozen=True)
class _Plan:
    """Everything an import writes, built and checked from the export before writing."""

    study: dict[str, Any]
    cases: list[_Case]
    reads: list[_Read]
    unblindings: list[tuple[str, int, datetime | None]]


def _study_fields(info: dict[str, Any]) -> dict[str, Any]:
    """The arguments of Store.create_study for the export's study (its name as ``name``)."""
    return {
        "name": _field(info, "name", str),
        "label_set": _field(info, "label_set", str),
        "blinding": _field(info, "blinding", str),
        "model_set": _field(info, "model_set", str),
        "anonymise": _field(info, "anonymise", bool),
        "created_by": _field(info, "created_by", str, _NONE, default=None),
        "created_at": _time(info, "created_at", optional=True),
    }


def _case(case: Any, present: set[str]) -> _Case:
    """One case of study.json, checked; refuses one that lacks the image it says it has."""
    item = _item(_field(case, "item", dict))
    case_id = _field(case, "case_id", int)
    # An export without "image_kept" (earlier exports) had every case's image.
    kept = _field(case, "image_kept", bool, default=True)
    image = f"images/{item.item_hash}"
    if kept and image not in present:
        raise _Refused(f"the export lacks the image of case {case_id}")
    removed = _field(case, "removed", bool)
    return _Case(
        case_id=case_id,
        item=item,
        group=_field(case, "group", str),
        image=image if kept else None,
        added_at=_time(case, "added_at", optional=True),
        added_by=_field(case, "added_by", str, _NONE, default=None),
        removed=removed,
        removed_at=_time(case, "removed_at", optional=True) if removed else None,
        removed_by=_field(case, "removed_by", str, _NONE, default=None) if removed else None,
    )


def _read(read: Any, items: dict[str, ItemRecord]) -> _Read:
    """One read of study.json as the record to save, checked as a save checks it; refuses one
    of an image that is not in the export or with a malformed region."""
    read_id = _field(read, "read_id", int)
    item_hash = _field(read, "item_hash", str)
    of = items.get(item_hash)
    if of is None:
        raise _Refused(f"read {read_id} is of an image that is not in the export")
    try:
        mask = geojson_to_mask(_field(read, "geojson", dict), (of.width, of.height))
    except ValueError as err:
        raise _Refused(f"read {read_id} has a malformed region: {err}") from None
    visible = _field(read, "visible", list)
    if not all(isinstance(v, str) for v in visible):
        raise TypeError("'visible' must be a list of strings")
    scores = []
    for score in _field(read, "scores", list):
        if not isinstance(score, dict):
            raise TypeError(f"a score is {type(score).__name__}, not an object")
        scores.append(ScoreRecord(**score))
        _field(score, "model", str)
        _field(score, "map", str)
        _field(score, "cam_class", str, _NONE)
    case_id = _field(read, "case_id", int, _NONE)
    parent_id = _field(read, "parent_id", int, _NONE)
    record = ReviewRecord(
        item_hash=item_hash,
        filename=of.filename,
        width=of.width,
        height=of.height,
        kind=_field(read, "kind", str),
        reader=_field(read, "reader", str),
        model_set=_field(read, "model_set", str),
        label=_field(read, "label", str),
        mask=mask,
        geojson=read["geojson"],
        predictions=_field(read, "predictions", dict),
        scores=scores,
        mpp=_field(read, "mpp", int, float, _NONE),
        overlap=_field(read, "overlap", int, float, _NONE),
        note=_field(read, "note", str, _NONE),
        is_reference=_field(read, "is_reference", bool),
        imported_by=_field(read, "imported_by", str, _NONE),
        case_id=case_id,
        read_kind=_field(read, "read_kind", str),
        blinded=_field(read, "blinded", bool),
        visible=visible,
        confidence=_field(read, "confidence", int, _NONE),
        no_region=_field(read, "no_region", bool),
        parent_id=parent_id,
        anonymised=_field(read, "anonymised", dict, _NONE),
        best_map=_field(read, "best_map", str, _NONE),
        label_set=_field(read, "label_set", str, _NONE),
        created_at=_time(read, "created_at"),
    )
    validate(record)  # what a save would refuse, refused before anything is written
    return _Read(read_id, case_id, parent_id, record)


def _checked(archive: zipfile.ZipFile, content: dict[str, Any]) -> _Plan:
    """Everything the import of ``content`` (study.json) writes, built and checked before
    anything is written: the study's fields, the cases in worklist order, the reads in the
    order they were saved. Raises ValueError for an export that lacks an image it says it has,
    holds a malformed region, or a study.json not of the export's shape ("a malformed
    study.json (read N: ...)", "(case N: ...)")."""
    present = set(archive.namelist())
    with _malformed():
        raw_study = _field(content, "study", dict)
        raw_cases = _field(content, "cases", list)
        raw_reads = _field(content, "reads", list)
        raw_unblindings = _field(content, "unblindings", list, default=[])
    with _malformed("study"):
        study = _study_fields(raw_study)
    cases = []
    for index, raw in enumerate(raw_cases):
        with _malformed(_where("case", raw, "case_id", index)):
            cases.append((_field(raw, "position", int), index, _case(raw, present)))
    items = {case.item.item_hash: case.item for _, _, case in cases}
    case_ids = {case.case_id for _, _, case in cases}
    reads = []
    for index, raw in enumerate(raw_reads):
        with _malformed(_where("read", raw, "read_id", index)):
            reads.append(_read(raw, items))
    unblindings = []
    for index, raw in enumerate(raw_unblindings):
        with _malformed(f"unblinding {index + 1}"):
            case_id = _field(raw, "case_id", int)
            if case_id not in case_ids:
                raise ValueError(f"case {case_id} is not one of the study's cases")
            reader = _field(raw, "reader", str)
            check_text(reader, "reader", NAME_LENGTH)
            unblindings.append((reader, case_id, _time(raw, "at")))
    return _Plan(
        study=study,
        cases=[case for _, _, case in sorted(cases, key=lambda c: (c[0], c[1]))],
        reads=sorted(reads, key=lambda r: r.read_id),
        unblindings=unblindings,
    )


def import_study(store: Store, data: bytes, name: str | None = None) -> StudyRecord:
    """Restores an exported study into ``store`` (under ``name``, default its own) and gives
    it. Kept: the study's settings and creation (time, by whom); its cases in worklist order
    with their images (a case whose image was never kept, a first-release review's, comes back
    without it), when and by whom each was added and removed; its reads with their times,
    regions, predictions, scores and links (an aided read to its unaided read, a read to its
    case); whose blinding ended for which cases, and when. Not kept: the ids (new ones are
    given) and the reads' versions: a version counts a reader's reads of an image across a
    whole database, so each read gets the next version of its reader's reads of the image in
    ``store`` (the same as in the export where neither database holds other reads of the
    image by that reader; reads.csv keeps the exported ones).

    Raises ValueError, before writing anything, for a file that is not an export, a malformed
    study.json, an image that the export says it has but lacks, or a malformed region; and for
    a study name that exists; StoreError when the database fails. Either way nothing is
    written: the whole study is one transaction."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        content = json.loads(archive.read("study.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not a study export ({err})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"not a study export of format {FORMAT} (got {found!r})")
    plan = _checked(archive, content)
    info = plan.study
    # One transaction: a database failure midway leaves nothing to trip over on a retry.
    with store.writing("import a study into"):
        study = store.create_study(
            info["name"] if name is None else name,
            info["label_set"],
            info["blinding"],
            info["model_set"],
            info["anonymise"],
            info["created_by"],
            created_at=info["created_at"],
        )
        case_ids: dict[int, int] = {}
        with archive:
            for case in plan.cases:
                try:
                    image = None if case.image is None else archive.read(case.image)
                except (zipfile.BadZipFile, zlib.error) as err:
                    raise ValueError(
                        f"case {case.case_id}: its image is unreadable ({err})"
                    ) from None
                try:
                    added, _ = store.add_case(
                        study.study_id,
                        case.item,
                        image,
                        case.group,
                        case.added_by,
                        added_at=case.added_at,
                    )
                except ValueError as err:
                    raise ValueError(f"case {case.case_id}: {err}") from None
                case_ids[case.case_id] = added.case_id
                if case.removed:
                    store.remove_case(added.case_id, case.removed_by, removed_at=case.removed_at)
        read_ids: dict[int, int] = {}
        for read in plan.reads:
            record = replace(
                read.record,
                study_id=study.study_id,
                case_id=None if read.case_id is None else case_ids.get(read.case_id),
                parent_id=None if read.parent_id is None else read_ids.get(read.parent_id),
            )
            try:
                read_ids[read.read_id] = store.save_review(record).review_id
            except ReadRefused as err:
                raise ValueError(f"read {read.read_id} by {record.reader}: {err}") from None
        for reader, case_id, at in plan.unblindings:
            store.end_blinding(reader, [case_ids[case_id]], at)
    return study


def write_export(store: Store, study: StudyRecord, path: Path) -> Path:
    """Writes :func:`export_study` to ``path``."""
    path.write_bytes(export_study(store, study))
    return path


__all__ = ["FORMAT", "export_study", "import_study", "reads_table", "write_export"]
