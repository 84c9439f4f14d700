"""Studies outside the app: cases from a folder or zip, the worklist, reader names and
accounts, the study export and its import into an empty database (SQLite and PostgreSQL), and
the backup command."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy.exc import OperationalError
from test_annotations_store import (
    V1_FIXTURE,
    db_url,  # noqa: F401 - the SQLite / PostgreSQL fixture
)

from annotations.geojson import mask_to_geojson
from annotations.records import CaseRecord, ReviewRecord, ScoreRecord
from annotations.scores import agreement
from annotations.store import Store, StoreError
from review import identity, modelsets, studies, studyio
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


def test_a_case_keeps_the_name_it_was_added_under_in_its_study(tmp_path: Path) -> None:
    # The same bytes renamed for a second study must not show, or export, the first name
    # (an IDC name carries the label).
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    first = store.create_study("first", "IDC", "open", "idc")
    second = store.create_study("renamed", "IDC", "blinded", "idc")
    studies.add_images(store, first, [("10253_idx5_x1351_y1101_class1.png", png(7))], None, 50)
    studies.add_images(store, second, [("case-007.png", png(7))], None, 50)
    (case,) = store.cases(second.study_id)
    assert case.item.filename == "case-007.png"
    assert store.case(case.case_id).item.filename == "case-007.png"
    assert store.cases(first.study_id)[0].item.filename.endswith("_class1.png")
    archive = studyio.export_study(store, second)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert "class1" not in z.read("study.json").decode()
    target = Store(f"sqlite:///{tmp_path / 't.sqlite'}")
    studies.add_images(target, studies.default_study(target), [("other.png", png(7))], None, 50)
    restored = studyio.import_study(target, archive, None)
    assert [c.item.filename for c in target.cases(restored.study_id)] == ["case-007.png"]


def test_an_admin_who_sees_others_reads_first_cannot_read_those_cases(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    study, cases = filled(store)
    reads = store.reviews_frame(study_id=study.study_id)
    # dr-b has read nothing: every read of the two cases is withheld from them...
    assert studies.not_yet_read(study, reads, "dr-b").all()
    # ... until they choose to see them: both cases are then closed to them.
    assert studies.end_blinding(store, study, "dr-b", reads) == 2
    ended = store.blinding_ended(study.study_id)
    assert set(ended) == {"dr-b"} and set(ended["dr-b"]) == {c.case_id for c in cases[:2]}
    assert studies.ended_items(store, study, "dr-b") == {c.item.item_hash for c in cases[:2]}
    assert not studies.not_yet_read(
        study, reads, "dr-b", studies.ended_items(store, study, "dr-b")
    ).any()
    listed = studies.worklist(store, study, "dr-b")
    assert [w.status for w in listed.items] == [studies.ENDED] * 2
    assert listed.progress() == "0 of 0 done (2 closed: blinding ended)"
    assert listed.next_unread() is None
    assert all(studies.maps_visible(study, w) for w in listed.items)
    assert listed.names(0) == (cases[0].group, cases[0].item.filename)
    # The store refuses their unaided read too (a tab that still shows the case as unread).
    empty = np.zeros((50, 50), bool)

    def unaided(reader: str, study_id: int, case: CaseRecord) -> ReviewRecord:
        return ReviewRecord(
            item_hash=case.item.item_hash,
            filename=case.item.filename,
            width=50,
            height=50,
            kind="patch",
            reader=reader,
            model_set="idc",
            label="normal",
            mask=empty,
            geojson=mask_to_geojson(empty),
            study_id=study_id,
            case_id=case.case_id,
            read_kind="unaided",
            blinded=True,
            visible=["image"],
            no_region=True,
        )

    with pytest.raises(ValueError, match="would not be blinded"):
        store.save_review(unaided("dr-b", study.study_id, cases[1]))
    assert "dr-b" not in set(store.reviews_frame()["reader"])
    # By image, not by case: the same image in another blinded study is closed to dr-b too.
    other = store.create_study("second", "BACH", "blinded", "idc")
    (again,) = studies.add_images(store, other, [("x.png", png(1))], "admin", 50).added
    assert again.item.item_hash == cases[0].item.item_hash
    elsewhere = studies.worklist(store, other, "dr-b").items[0]
    assert elsewhere.status == studies.ENDED
    assert elsewhere.blinding_ended == ended["dr-b"][cases[0].case_id]
    assert studies.worklist(store, other, "dr-a").items[0].status == studies.UNREAD
    with pytest.raises(ValueError, match="would not be blinded"):
        store.save_review(unaided("dr-b", other.study_id, again))
    assert store.save_review(unaided("dr-a", other.study_id, again)).version == 3
    # An anonymised study's aided read after that says the model names were known (Compare
    # names them); another reader's does not.
    (mine,) = [w for w in studies.worklist(store, study, "dr-a").items if w.status == studies.AIDED]
    assert mine.blinding_ended is None
    assert studies.visible(study, "aided", False) == ("image", "file name", "predictions", "maps")
    seen = studies.worklist(store, study, "dr-b").items[0]
    assert seen.blinding_ended is not None
    assert studies.visible(study, "aided", True)[-1] == "model names"
    assert studies.visible(study, "unaided", True) == ("image",)
    # A name typed in another case is the reader who ended their blinding (local mode).
    studies.end_blinding(store, other, "DR-E", store.reviews_frame(study_id=other.study_id))
    assert "DR-E" in store.reader_names() and identity.known_spelling(store, "dr-e") == "DR-E"
    # Asking again records nothing new: the first time is kept.
    first = ended["dr-b"][cases[0].case_id]
    assert studies.end_blinding(store, study, "dr-b", reads) == 0
    assert store.blinding_ended(study.study_id)["dr-b"][cases[0].case_id] == first
    # dr-a read both unaided: nothing of theirs is closed, and their worklist is unchanged.
    assert studies.worklist(store, study, "dr-a").progress() == "2 of 2 done"
    assert "dr-a" not in store.blinding_ended(study.study_id)
    # In this anonymised study dr-a's unaided-only case is withheld from them until their aided
    # read; shown, it is recorded, yet the unaided read they made before stays importable.
    reads = store.reviews_frame(study_id=study.study_id)
    assert studies.end_blinding(store, study, "dr-a", reads) == 0
    assert set(store.blinding_ended(study.study_id)["dr-a"]) == {cases[1].case_id}
    copy = studyio.import_study(store, studyio.export_study(store, study), "copy")
    assert len(store.reviews_frame(study_id=copy.study_id)) == 3


def test_a_study_exports_and_imports_into_an_empty_database(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = Store(f"sqlite:///{tmp_path / 'source.sqlite'}")
    study, cases = filled(source)
    studies.end_blinding(source, study, "dr-b", source.reviews_frame(study_id=study.study_id))
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
    # Whose blinding ended, for which cases and when, comes along.
    moved = {c.item.item_hash: c.case_id for c in target.cases(restored.study_id)}
    when = source.blinding_ended(study.study_id)["dr-b"]
    assert target.blinding_ended(restored.study_id) == {
        "dr-b": {moved[c.item.item_hash]: when[c.case_id] for c in cases[:2]}
    }
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
    with pytest.raises(ValueError, match="a study needs a name"):
        studyio.import_study(target, data, " ")  # a name given, not the export's
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


def _details(store: Store, study_id: int) -> list[tuple[Any, ...]]:
    """A study's cases as what an import must keep of them."""
    return [
        (
            c.item.item_hash,
            c.position,
            c.group,
            c.added_at,
            c.added_by,
            c.removed,
            c.removed_at,
            c.removed_by,
        )
        for c in store.cases(study_id, removed=True)
    ]


def test_an_import_keeps_when_and_by_whom_the_study_and_its_cases_were_made(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "source").mkdir()  # images of its own (blobs beside the file), not the target's
    source = Store(f"sqlite:///{tmp_path / 'source' / 'source.sqlite'}")
    study, cases = filled(source)
    data = studyio.export_study(source, study)
    target = Store(db_url)
    restored = studyio.import_study(target, data)
    assert (restored.created_at, restored.created_by) == (study.created_at, study.created_by)
    assert target.study(restored.study_id).created_at == study.created_at
    assert _details(target, restored.study_id) == _details(source, study.study_id)
    assert [d[4] for d in _details(target, restored.study_id)] == ["admin"] * 3
    assert _details(target, restored.study_id)[2][5:] == (
        True,
        source.cases(study.study_id, removed=True)[2].removed_at,
        "admin",
    )

    # Times written with an offset (a study.json from elsewhere) are the same moments in UTC.
    def with_offsets(content: dict[str, Any]) -> None:
        content["study"]["created_at"] = "2024-05-01T10:00:00+02:00"
        content["cases"][2]["removed_at"] = "2024-05-01T10:00:00+02:00"
        content["reads"][0]["created_at"] = "2024-05-01T10:00:00+02:00"

    moved = studyio.import_study(target, _edited(data, with_offsets), "moved")
    eight = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert target.study(moved.study_id).created_at == eight
    assert target.cases(moved.study_id, removed=True)[2].removed_at == eight
    reads = target.reviews_frame(study_id=moved.study_id)
    assert reads.created_at.iloc[0] == pd.Timestamp(eight)
    # Versions count a reader's reads of an image across the database: the second copy's
    # reads of the same images follow the first copy's.
    assert list(reads.version) == [3, 4, 2]

    # An export from before these details: taken all the same (added now, by nobody).
    def older(content: dict[str, Any]) -> None:
        for case in content["cases"]:
            for key in ("image_kept", "added_at", "added_by", "removed_at", "removed_by"):
                del case[key]

    old = studyio.import_study(target, _edited(data, older), "older")
    assert [(d[4], d[5], d[7]) for d in _details(target, old.study_id)] == [
        (None, False, None),
        (None, False, None),
        (None, True, None),
    ]
    assert target.image_bytes(cases[0].item.item_hash) == png(1)


def test_a_study_of_first_release_reviews_moves_without_the_images_never_kept(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # A first-release database keeps reviews, not images: migrated, its reviews are the study
    # "Reviews before studies" whose cases have no image bytes.
    (tmp_path / "source").mkdir()
    path = tmp_path / "source" / "v1.sqlite"
    shutil.copy(V1_FIXTURE, path)
    source = Store(f"sqlite:///{path}")
    earlier = next(s for s in source.studies() if s.name == "Reviews before studies")
    studies.add_images(source, earlier, [("new.png", png(9))], "admin", 50)
    data = studyio.export_study(source, earlier)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = json.loads(archive.read("study.json"))
        images = [n for n in archive.namelist() if n.startswith("images/")]
    assert [c["image_kept"] for c in content["cases"]] == [False, False, False, True]
    assert images == [f"images/{content['cases'][3]['item']['item_hash']}"]

    target = Store(db_url)
    restored = studyio.import_study(target, data)
    cases = target.cases(restored.study_id)
    assert [c.item for c in cases] == [c.item for c in source.cases(earlier.study_id)]
    assert [target.image_bytes(c.item.item_hash) for c in cases] == [None, None, None, png(9)]
    before = source.reviews_frame(study_id=earlier.study_id)
    after = target.reviews_frame(study_id=restored.study_id)
    assert len(after) == 6
    for column in ("item_hash", "reader", "label", "read_kind", "is_reference", "created_at"):
        assert list(after[column]) == list(before[column]), column
    hashes = {c.case_id: c.item.item_hash for c in cases}
    assert [hashes[c] for c in after.case_id] == list(after.item_hash)
    # Outside that study, an image missing from the store (a database copied without its
    # blobs folder) is lost, not "never kept": the export is refused, naming the case.
    other = source.create_study("later", "IDC", "blinded", "idc")
    studies.add_images(source, other, [("lost.png", png(10))], "admin", 50)
    shutil.rmtree(tmp_path / "source" / "blobs")
    with pytest.raises(ValueError, match=r"the image of case \d+ \(lost.png\) is missing"):
        studyio.export_study(source, other)
    # An export that says it has a case's image, or says nothing (an export from before
    # "image_kept": every image was there), must hold it.
    for kept in (True, None):

        def claim(content: dict[str, Any], kept: bool | None = kept) -> None:
            if kept is None:
                del content["cases"][0]["image_kept"]
            else:
                content["cases"][0]["image_kept"] = kept

        with pytest.raises(ValueError) as refused:
            studyio.import_study(target, _edited(data, claim), "retry")
        assert (
            str(refused.value)
            == f"the export lacks the image of case {content['cases'][0]['case_id']}"
        )
    assert "retry" not in [s.name for s in target.studies()]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda c: c["reads"][0]["scores"][0].update(sensitivity=0.5),
            "read 1: ScoreRecord.__init__() got an unexpected keyword argument 'sensitivity'",
        ),
        (
            lambda c: c["cases"][0]["item"].pop("kind"),
            "case 1: ItemRecord.__init__() missing 1 required positional argument: 'kind'",
        ),
        (lambda c: c["reads"][0].pop("mpp"), "read 1: no field 'mpp'"),
        (lambda c: c["reads"][1].update(blinded="yes"), "read 2: 'blinded' is str, not bool"),
        (
            lambda c: c["reads"][2].update(created_at="yesterday"),
            "read 3: Invalid isoformat string: 'yesterday'",
        ),
        (lambda c: c["reads"][0].update(reader=" "), "read 1: reader must be a non-empty string"),
        (lambda c: c["cases"][1].update(position="2"), "case 2: 'position' is str, not int"),
        (lambda c: c["study"].pop("blinding"), "study: no field 'blinding'"),
        (
            lambda c: c.update(unblindings=[{"reader": "dr-b", "case_id": 99, "at": None}]),
            "unblinding 1: case 99 is not one of the study's cases",
        ),
        (
            lambda c: c.update(unblindings=[{"reader": "", "case_id": 1, "at": "2026-11-28"}]),
            "unblinding 1: reader must be a non-empty string",
        ),
    ],
)
def test_a_malformed_study_json_is_refused_in_one_line_before_writing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], Any],
    why: str,
) -> None:
    source = Store(f"sqlite:///{tmp_path / 'source.sqlite'}")
    study, _ = filled(source)
    broken = _edited(studyio.export_study(source, study), change)
    target = Store(f"sqlite:///{tmp_path / 'target.sqlite'}")
    with pytest.raises(ValueError) as refused:
        studyio.import_study(target, broken)
    assert str(refused.value) == f"a malformed study.json ({why})"
    path = tmp_path / "study.zip"
    path.write_bytes(broken)
    assert cli(["--db", target.url, "study", "import", str(path)]) == 2
    assert capsys.readouterr().err == f"error: a malformed study.json ({why})\n"
    assert [s.name for s in target.studies()] == ["Default study"]  # a new database's
    assert len(target.reviews_frame()) == 0


def _edited(data: bytes, change: Callable[[dict[str, Any]], Any]) -> bytes:
    """The export with its study.json changed in place by ``change``."""

    def rewrite(name: str, content: bytes) -> bytes:
        if name != "study.json":
            return content
        study = json.loads(content)
        change(study)
        return json.dumps(study).encode()

    return _rewritten(data, rewrite)


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


def test_backup_refuses_a_database_file_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistyped --db once created and migrated an empty database there, and backed that up.
    typo = tmp_path / "reveiws.sqlite"
    target = tmp_path / "backup.sqlite"
    assert cli(["--db", f"sqlite:///{typo}", "backup", "--to", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: no SQLite database at {typo.resolve()}: check --db (nothing to back up)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_study_needs_installed_models_and_its_images_their_patch_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if set(modelsets.installed()) < {"idc", "pcam"}:
        pytest.skip("needs the shipped idc and pcam model sets")
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    create = ["--db", store.url, "study", "create"]
    assert cli([*create, "typo", "--model-set", "IDC"]) == 2
    assert "no model set named 'IDC' (installed: idc, pcam)" in capsys.readouterr().err
    assert "typo" not in [s.name for s in store.studies()]
    assert cli([*create, "nodes", "--model-set", "pcam"]) == 0
    # An 80 px image is a patch for the pcam models (96 px), not a region as for idc (50 px).
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "p.png").write_bytes(png(6, side=80))
    assert cli(["--db", store.url, "study", "add-images", "--study", "nodes", str(folder)]) == 0
    (nodes,) = [s for s in store.studies() if s.name == "nodes"]
    (case,) = store.cases(nodes.study_id)
    assert case.item.kind == "patch"
    # An export never replaces a file that is there.
    target = tmp_path / "nodes.zip"
    target.write_bytes(b"an earlier export")
    assert cli(["--db", store.url, "study", "export", "--study", "nodes", "--to", str(target)]) == 2
    assert target.read_bytes() == b"an earlier export"


def test_adding_images_that_add_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    study = studies.default_study(store)
    add = ["--db", store.url, "study", "add-images", "--study", study.name]
    none = tmp_path / "no-images"
    none.mkdir()
    (none / "notes.txt").write_text("not an image")
    assert cli([*add, str(none)]) == 2
    assert capsys.readouterr().err == (
        f"error: no images found in {none}: added no cases to {study.name}\n"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"broken")
    (broken / "b.png").write_bytes(b"broken too")
    assert cli([*add, str(broken)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused: ") for line in lines[:2])
    assert lines[2] == f"error: every image in {broken} was refused: added no cases to {study.name}"
    assert store.cases(study.study_id) == []
    # Images that are cases already: nothing new, and no mistake (a folder added again).
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.png").write_bytes(png(4))
    assert cli([*add, str(good)]) == 0 and cli([*add, str(good)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"added 1 cases to {study.name}",
        f"added 0 cases to {study.name}; 1 already in the study (a.png)",
    ]
    # The same image under another name is a case already, and the message says which.
    (good / "b.png").write_bytes(png(4))
    assert cli([*add, str(good)]) == 0
    assert capsys.readouterr().out == (
        f"added 0 cases to {study.name}; 2 already in the study (a.png, b.png)\n"
    )
    # In an open study the message also names the case it is (blinded: that name may tell the
    # label).
    shown = store.create_study("open one", "IDC", "open", "idc")
    studies.add_images(store, shown, [("a.png", png(4))], None, 50)
    again = studies.add_images(store, shown, [("b.png", png(4))], None, 50)
    assert again.present_text() == "; 1 already in the study (b.png as a.png)"


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
