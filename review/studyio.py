"""A study as one zip, for analysis and for moving it: export, and import into an empty database.

The zip holds:

- ``reads.csv``: one row per read (study, case, group, file, reader, read kind, blinded, what was
  visible, label, confidence, no region, region area in px and µm², model set, and every score
  as a column ``<model>/<map>/<score>``, plus the class each CAM was scored for as
  ``<model>/<map>/cam_class``); text cells that a spreadsheet would run as a formula are quoted;
- ``regions/read-<id>.geojson``: each read's region in the image's pixels (QuPath imports them);
- ``study.json``: the study, its cases and its reads with predictions and scores, everything an
  import needs;
- ``images/<sha256>``: every case's image as it was added.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from annotations.geojson import geojson_to_mask
from annotations.records import ItemRecord, ReviewRecord, ScoreRecord, StudyRecord
from annotations.scores import SCORE_NAMES
from annotations.store import Store
from review.exports import csv_text

FORMAT = "lran-review-study/1"


def _opt(value: Any, cast: Any = None) -> Any:
    """None for a missing value (None, NaN, NA), else the value (cast when given)."""
    if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
        return None
    return cast(value) if cast is not None else value


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
    """The study as a zip (see the module doc)."""
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
        for case in cases:
            data = store.image_bytes(case.item.item_hash)
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
                        "created_at": study.created_at.isoformat(),
                    },
                    "cases": [
                        {
                            "case_id": c.case_id,
                            "position": c.position,
                            "group": c.group,
                            "removed": c.removed,
                            "item": c.item.__dict__,
                        }
                        for c in cases
                    ],
                    "reads": records,
                },
                indent=1,
            ),
        )
    return buffer.getvalue()


def _checked(
    archive: zipfile.ZipFile, content: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[int, np.ndarray]]:
    """The export's items by hash and every read's region as a mask by read id. Refuses
    (ValueError) an export that lacks an image or holds a malformed region, naming it, before
    anything is written. KeyError, TypeError or AttributeError where study.json has not the
    export's shape."""
    if not isinstance(content["study"], dict):
        raise TypeError("'study' is not an object")
    present = set(archive.namelist())
    items: dict[str, dict[str, Any]] = {}
    masks: dict[int, np.ndarray] = {}
    for case in content["cases"]:
        items[case["item"]["item_hash"]] = case["item"]
        if f"images/{case['item']['item_hash']}" not in present:
            raise ValueError(f"the export lacks the image of case {case['case_id']}")
    for read in content["reads"]:
        item = items.get(read["item_hash"])
        if item is None:
            raise ValueError(f"read {read['read_id']} is of an image that is not in the export")
        try:
            masks[read["read_id"]] = geojson_to_mask(
                read["geojson"], (item["width"], item["height"])
            )
        except ValueError as err:
            raise ValueError(f"read {read['read_id']} has a malformed region: {err}") from None
    return items, masks


def import_study(store: Store, data: bytes, name: str | None = None) -> StudyRecord:
    """Restores an exported study into ``store`` (under ``name``, default its own), with its
    cases, images and reads (versions, times and links kept). Raises ValueError, before
    writing anything, for a file that is not an export, a missing image or a malformed region;
    and for a study name that exists; StoreError when the database fails. Either way nothing is
    written: the whole study is one transaction."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        content = json.loads(archive.read("study.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not a study export ({err})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"not a study export of format {FORMAT} (got {found!r})")
    try:
        items, masks = _checked(archive, content)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"a malformed study.json ({type(err).__name__}: {err})") from None
    info = content["study"]
    # One transaction: a database failure midway leaves nothing to trip over on a retry.
    with store.writing("import a study into"):
        study = store.create_study(
            name or info["name"],
            info["label_set"],
            info["blinding"],
            info["model_set"],
            bool(info["anonymise"]),
            info.get("created_by"),
        )
        case_ids: dict[int, int] = {}
        with archive:
            for case in sorted(content["cases"], key=lambda c: c["position"]):
                item = ItemRecord(**case["item"])
                image = archive.read(f"images/{item.item_hash}")
                added, _ = store.add_case(study.study_id, item, image, case["group"], None)
                case_ids[case["case_id"]] = added.case_id
                if case["removed"]:
                    store.remove_case(added.case_id, None)
        read_ids: dict[int, int] = {}
        for read in sorted(content["reads"], key=lambda r: r["read_id"]):
            of = items[read["item_hash"]]
            record = ReviewRecord(
                item_hash=read["item_hash"],
                filename=of["filename"],
                width=of["width"],
                height=of["height"],
                kind=read["kind"],
                reader=read["reader"],
                model_set=read["model_set"],
                label=read["label"],
                mask=masks[read["read_id"]],
                geojson=read["geojson"],
                predictions=read["predictions"],
                scores=[ScoreRecord(**s) for s in read["scores"]],
                mpp=read["mpp"],
                overlap=read["overlap"],
                note=read["note"],
                is_reference=read["is_reference"],
                imported_by=read["imported_by"],
                study_id=study.study_id,
                case_id=case_ids.get(read["case_id"]) if read["case_id"] is not None else None,
                read_kind=read["read_kind"],
                blinded=read["blinded"],
                visible=read["visible"],
                confidence=read["confidence"],
                no_region=read["no_region"],
                parent_id=read_ids.get(read["parent_id"]) if read["parent_id"] else None,
                anonymised=read["anonymised"],
                best_map=read["best_map"],
                label_set=read["label_set"],
                created_at=datetime.fromisoformat(read["created_at"]),
            )
            read_ids[read["read_id"]] = store.save_review(record).review_id
    return study


def write_export(store: Store, study: StudyRecord, path: Path) -> Path:
    """Writes :func:`export_study` to ``path``."""
    path.write_bytes(export_study(store, study))
    return path


__all__ = ["FORMAT", "export_study", "import_study", "reads_table", "write_export"]
