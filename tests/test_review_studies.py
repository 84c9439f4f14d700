"""Studies outside the app: cases from a folder or zip, the worklist, reader names and
accounts, the study export and its import into an empty database (SQLite and PostgreSQL), and
the backup command."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.exc import OperationalError
from test_annotations_store import db_url  # noqa: F401 - the SQLite / PostgreSQL fixture

from annotations.geojson import mask_to_geojson
from annotations.records import ReviewRecord, ScoreRecord
from annotations.scores import agreement
from annotations.store import Store, StoreError
from review import identity, studies, studyio
from review.cli import main as cli


def png(seed: int, side: int = 50) -> bytes:
    buf = io.BytesIO()
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def filled(store: Store) -> tuple[studies.StudyRecord, list]:
    """A blinded study with three cases, an unaided and an aided read of the first by dr-a,
    an unaided read with no region of the second, and the third removed."""
    study = store.create_study("reader study 1", "BACH", "blinded", "idc", anonymise=True)
    result = studies.add_images(
        store,
        study,
        [("10253_idx5_x1351_y1101_class1.png", png(1)), ("b/x.png", png(2)), ("c.png", png(3))],
        "admin",
        50,
    )
    cases = result.added
    mask = np.zeros((50, 50), bool)
    mask[5:25, 10:30] = True
    scores = [
        ScoreRecord.of(
            "resnet18",
            "cam",
            "IDC-positive",
            agreement(np.random.default_rng(0).random((50, 50)), mask),
            15.0,
        )
    ]

    def read(case, kind, label, region, parent=None, **more):
        return store.save_review(
            ReviewRecord(
                item_hash=case.item.item_hash,
                filename=case.item.filename,
                width=50,
                height=50,
                kind="patch",
                reader="dr-a",
                model_set="idc",
                label=label,
                mask=region,
                geojson=mask_to_geojson(region),
                predictions={"resnet18": {"IDC-negative": 0.3, "IDC-positive": 0.7}},
                scores=scores if region.any() else [],
                study_id=study.study_id,
                case_id=case.case_id,
                read_kind=kind,
                blinded=kind == "unaided",
                visible=["image"] if kind == "unaided" else ["image", "predictions", "maps"],
                parent_id=parent,
                label_set="BACH",
                **more,
            )
        )

    first = read(cases[0], "unaided", "invasive", mask, confidence=4, note="=cmd()")
    read(
        cases[0],
        "aided",
        "in situ",
        mask,
        parent=first.review_id,
        anonymised={"A": "resnet18"},
        best_map="A",
    )
    read(cases[1], "unaided", "normal", np.zeros((50, 50), bool), no_region=True)
    store.remove_case(cases[2].case_id, "admin")
    return study, cases


def test_the_worklist_counts_a_readers_reads_and_skips_removed_cases(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    study, cases = filled(store)
    listed = studies.worklist(store, study, "dr-a")
    assert [w.case.case_id for w in listed.items] == [c.case_id for c in cases[:2]]
    assert [w.status for w in listed.items] == [studies.AIDED, studies.UNAIDED]
    assert listed.progress() == "2 of 2 done" and listed.next_unread() is None
    other = studies.worklist(store, study, "dr-b")
    assert [w.status for w in other.items] == [studies.UNREAD] * 2
    assert other.next_unread(0) == 1 and other.next_unread(1) == 0
    assert [c.group for c in cases] == ["patient 10253", "b", "c.png"]
    # Blinded: group and file name only once the reader's unaided read is saved.
    assert study.blinded
    assert listed.names(1) == (cases[1].group, cases[1].item.filename)
    assert other.names(1) == (studies.HIDDEN_GROUP, studies.HIDDEN_FILE)
    # Removed, not deleted: it comes back with its reads when added again.
    back = studies.add_images(store, study, [("c.png", png(3))], "admin", 50)
    assert [c.case_id for c in back.added] == [cases[2].case_id]


def test_cases_from_a_server_folder_or_zip(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    study = studies.default_study(store)
    folder = tmp_path / "images" / "patient-3"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(png(4))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"broken")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("slide-9/b.png", png(5))
        z.writestr("slide-9/a-copy.png", png(4))
    assert (
        cli(
            [
                "--db",
                store.url,
                "study",
                "add-images",
                "--study",
                study.name,
                str(tmp_path / "images"),
            ]
        )
        == 0
    )
    assert cli(["--db", store.url, "study", "add-images", "--study", study.name, str(archive)]) == 0
    cases = store.cases(study.study_id)
    assert [(c.item.filename, c.group) for c in cases] == [
        ("patient-3/a.png", "patient-3"),
        ("slide-9/b.png", "slide-9"),
    ]
    assert cli(["--db", store.url, "study", "add-images", "--study", "nope", str(archive)]) == 2


def test_reader_names_are_normalised_and_reference_is_reserved() -> None:
    assert identity.normalise_name("  dr\u200b-a  ") == "dr-a"
    assert identity.normalise_name("\uff24\uff52\uff0e\uff21") == "Dr.A"  # full width folds (NFKC)
    assert identity.normalise_name("dr  \t a") == "dr a"
    for bad in ("", "\u200b\u200d", "reference:mask.png", "x" * 201):
        with pytest.raises(identity.IdentityError):
            identity.normalise_name(bad)


def test_a_name_typed_in_another_case_is_the_reader_already_known(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    filled(store)  # reads by dr-a
    store.set_place("dr-b", filled_study_id := store.studies()[0].study_id, None)
    assert store.reader_names() == ["dr-a", "dr-b"]
    assert filled_study_id
    assert identity.known_spelling(store, "DR-A") == "dr-a"
    assert identity.known_spelling(store, "dr-b") == "dr-b"
    assert identity.known_spelling(store, "Dr-C") == "Dr-C"  # new: as typed
    store.add_reader("DR-A", None)  # an account's spelling comes first
    assert identity.known_spelling(store, "dr-a") == "DR-A"


def test_accounts_sign_in_with_a_hashed_password_and_can_be_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli(["--db", url, "readers", "add", "Dr\u200b-A", "--admin", "--password-stdin"]) == 0
    store = Store(url)
    account = store.reader("Dr-A")
    assert account is not None and account.role == "admin"
    assert account.password_hash.startswith("$argon2id$")
    assert "correct horse" not in account.password_hash
    assert identity.sign_in(store, "Dr-A", "correct horse battery") == "Dr-A"
    # One person, one name, whatever the case typed: the account's spelling is the name.
    assert identity.sign_in(store, "dr-a", "correct horse battery") == "Dr-A"
    with pytest.raises(ValueError, match="exists already"):
        store.add_reader("DR-A", None)
    with pytest.raises(identity.IdentityError, match="do not match"):
        identity.sign_in(store, "Dr-A", "wrong password!")
    with pytest.raises(identity.IdentityError, match="do not match"):
        identity.sign_in(store, "nobody", "correct horse battery")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli(["--db", url, "readers", "add", "dr-b", "--password-stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    # An admin can be made a reader again, and back.
    assert cli(["--db", url, "readers", "demote", "Dr-A"]) == 0
    assert store.reader("Dr-A").role == "reader"
    assert cli(["--db", url, "readers", "promote", "Dr-A"]) == 0
    assert store.reader("Dr-A").role == "admin"
    assert cli(["--db", url, "readers", "demote", "nobody"]) == 2
    assert cli(["--db", url, "readers", "disable", "Dr-A"]) == 0
    with pytest.raises(identity.IdentityError, match="disabled"):
        identity.sign_in(store, "Dr-A", "correct horse battery")
    assert cli(["--db", url, "readers", "add", "reference:x", "--no-password"]) == 2


def test_a_study_exports_and_imports_into_an_empty_database(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = Store(f"sqlite:///{tmp_path / 'source.sqlite'}")
    study, cases = filled(source)
    data = studyio.export_study(source, study)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        rows = list(csv.DictReader(io.StringIO(archive.read("reads.csv").decode())))
    assert {"reads.csv", "study.json"} <= names
    assert {f"images/{c.item.item_hash}" for c in cases} <= names
    assert len([n for n in names if n.startswith("regions/")]) == 3
    assert [r["read_kind"] for r in rows] == ["unaided", "aided", "unaided"]
    assert rows[0]["group"] == "patient 10253" and rows[0]["confidence"] == "4"
    assert rows[0]["region_px"] == "400" and rows[2]["no_region"] == "True"
    assert rows[0]["note"] == "'=cmd()"  # a formula stays text
    assert float(rows[0]["resnet18/cam/energy_pointing_game"]) > 0
    assert rows[0]["resnet18/cam/cam_class"] == "IDC-positive"

    target = Store(db_url)
    restored = studyio.import_study(target, data)
    assert (restored.name, restored.blinding, restored.label_set, restored.anonymise) == (
        study.name,
        "blinded",
        "BACH",
        True,
    )
    assert [c.item.item_hash for c in target.cases(restored.study_id)] == [
        c.item.item_hash for c in cases[:2]
    ]
    assert target.image_bytes(cases[0].item.item_hash) == png(1)
    before = source.reviews_frame(study_id=study.study_id)
    after = target.reviews_frame(study_id=restored.study_id)
    for column in (
        "reader",
        "read_kind",
        "label",
        "version",
        "confidence",
        "no_region",
        "blinded",
        "best_map",
        "created_at",
    ):
        assert list(after[column].astype(object).fillna("-")) == list(
            before[column].astype(object).fillna("-")
        ), column
    assert int(after["parent_id"].iloc[1]) == int(after["review_id"].iloc[0])
    np.testing.assert_array_equal(
        target.get_mask(int(after["review_id"].iloc[0])),
        source.get_mask(int(before["review_id"].iloc[0])),
    )
    again = studyio.export_study(target, restored)
    with zipfile.ZipFile(io.BytesIO(again)) as archive:
        rows_again = list(csv.DictReader(io.StringIO(archive.read("reads.csv").decode())))
    keep = ("read_kind", "label", "region_px", "resnet18/cam/energy_pointing_game", "note")
    assert [{k: r[k] for k in keep} for r in rows_again] == [{k: r[k] for k in keep} for r in rows]
    with pytest.raises(ValueError, match="exists already"):
        studyio.import_study(target, data)
    with pytest.raises(ValueError, match="not a study export"):
        studyio.import_study(target, b"not a zip")
    # An export that lacks an image, or holds a malformed region, is refused before anything
    # is written: no half-imported study to trip over when the import is tried again.
    for broken in (_without_image(data, cases[0].item.item_hash), _with_bad_region(data)):
        with pytest.raises(ValueError, match=r"lacks the image|malformed region"):
            studyio.import_study(target, broken, "retry")
    assert "retry" not in [s.name for s in target.studies()]
    # A study.json of another shape is "malformed", not a TypeError or AttributeError.
    for shape in ({"cases": None}, {"study": []}, {"reads": [{"read_id": 1}]}):
        with pytest.raises(ValueError, match=r"malformed study\.json"):
            studyio.import_study(target, _with_study_json(data, shape), "retry")
    with pytest.raises(ValueError, match="not a study export"):
        studyio.import_study(
            target, _rewritten(data, lambda n, b: b"[]" if n == "study.json" else b)
        )

    # A database failure at the second read rolls back the study, its cases and its first read:
    # the retry under the same name goes through.
    insert, calls = target._insert, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("INSERT INTO review", {}, Exception("disk I/O error"))
        return insert(*args, **kwargs)

    monkeypatch.setattr(target, "_insert", failing)
    with pytest.raises(StoreError, match="disk I/O error"):
        studyio.import_study(target, data, "second copy")
    monkeypatch.undo()
    assert "second copy" not in [s.name for s in target.studies()]
    assert len(target.reviews_frame()) == 3  # the first copy's
    second = studyio.import_study(target, data, "second copy")
    assert len(target.cases(second.study_id)) == 2
    assert len(target.reviews_frame(study_id=second.study_id)) == 3


def _rewritten(data: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """The export with each member passed through ``change`` (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as old, zipfile.ZipFile(out, "w") as new:
        for name in old.namelist():
            kept = change(name, old.read(name))
            if kept is not None:
                new.writestr(name, kept)
    return out.getvalue()


def _without_image(data: bytes, item_hash: str) -> bytes:
    return _rewritten(data, lambda n, b: None if n == f"images/{item_hash}" else b)


def _with_study_json(data: bytes, changes: dict[str, Any]) -> bytes:
    def change(name: str, content: bytes) -> bytes:
        return (
            json.dumps(json.loads(content) | changes).encode() if name == "study.json" else content
        )

    return _rewritten(data, change)


def _with_bad_region(data: bytes) -> bytes:
    def change(name: str, content: bytes) -> bytes:
        if name != "study.json":
            return content
        study = json.loads(content)
        study["reads"][-1]["geojson"] = {"type": "Point", "coordinates": [1, 2]}
        return json.dumps(study).encode()

    return _rewritten(data, change)


def test_backup_copies_a_live_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    store = Store(url)
    filled(store)
    target = tmp_path / "backup.sqlite"
    assert cli(["--db", url, "backup", "--to", str(target)]) == 0
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT count(*) FROM reviews").fetchone() == (3,)
    # Restoring is copying the file back while the app is stopped: it opens as it was.
    restored = Store(f"sqlite:///{target}")
    assert len(restored.reviews_frame()) == 3
    assert cli(["--db", url, "backup", "--to", str(target)]) == 2
    # A folder that is not there: refused with a line, not a traceback.
    assert cli(["--db", url, "backup", "--to", str(tmp_path / "no-such" / "b.sqlite")]) == 2


@pytest.mark.parametrize(
    ("name", "classes", "want"),
    [
        ("IDC", ["IDC-negative", "IDC-positive"], {"IDC-positive": "IDC-positive"}),
        ("BACH", ["IDC-negative", "IDC-positive"], {"in situ": "IDC-positive"}),
        ("PCam", ["no tumour", "metastasis"], {"no tumour": "no tumour"}),
        ("PCam", ["no tumour", "metastasis"], {"metastasis": "metastasis"}),
    ],
)
def test_each_label_set_compares_its_labels_with_the_models_classes(name, classes, want):
    labels = studies.label_set(name)
    assert labels.choices[-1] == studies.UNSURE
    mapping = labels.mapping(classes)
    assert {k: mapping[k] for k in want} == want
    assert labels.model_class(studies.UNSURE, classes) is None
    assert set(mapping) == set(labels.labels)
