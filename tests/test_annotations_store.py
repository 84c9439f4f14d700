"""The review store, on SQLite and (when LRAN_REVIEW_TEST_PG_URL is set) on PostgreSQL."""

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from annotations.geojson import mask_to_geojson
from annotations.records import (
    ItemRecord,
    ReviewRecord,
    SavedReview,
    ScoreRecord,
    content_hash,
)
from annotations.schema import Base, Case
from annotations.scores import SCORE_NAMES, agreement
from annotations.store import Store, StoreError, alembic_config, head_revision

PG_URL = os.environ.get("LRAN_REVIEW_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request, tmp_path):
    """A URL of an empty database: a fresh SQLite file, or a fresh schema on PostgreSQL that is
    dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reviews.sqlite'}"
        return
    if not PG_URL:
        pytest.skip("set LRAN_REVIEW_TEST_PG_URL to run the store tests on PostgreSQL")
    schema = f"lran_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def make_record(reader="reader a", label="invasive", seed=0, **changes) -> ReviewRecord:
    rng = np.random.default_rng(seed)
    mask = np.zeros((24, 32), dtype=bool)
    mask[4:12, 6 + seed : 20 + seed] = True
    saliency = rng.random((24, 32))
    rec = ReviewRecord(
        item_hash=content_hash(b"patch bytes"),
        filename="patch_001.png",
        width=32,
        height=24,
        kind="patch",
        reader=reader,
        model_set="bach-v1",
        label=label,
        mask=mask,
        geojson=mask_to_geojson(mask),
        predictions={
            "resnet18-lran": {"benign": 0.1, "in situ": 0.2, "invasive": 0.6, "normal": 0.1},
            "resnet18": {"benign": 0.5, "in situ": 0.1, "invasive": 0.3, "normal": 0.1},
        },
        scores=[
            ScoreRecord.of("resnet18-lran", "cam", "invasive", agreement(saliency, mask), 6.3),
            ScoreRecord.of("resnet18-lran", "gate1", None, agreement(saliency**2, mask), 6.3),
        ],
        mpp=0.42,
        note="BACH ground truth: invasive",
    )
    for key, value in changes.items():
        setattr(rec, key, value)
    return rec


def test_round_trip(db_url):
    store = Store(db_url)
    rec = make_record()
    saved = store.save_review(rec)
    assert saved == SavedReview(review_id=saved.review_id, version=1)

    assert np.array_equal(store.get_mask(saved.review_id), rec.mask)
    assert store.get_geojson(saved.review_id) == rec.geojson
    assert store.item_hashes() == [rec.item_hash]

    reviews = store.reviews_frame()
    assert len(reviews) == 1
    row = reviews.iloc[0]
    assert (row.item_hash, row.filename, row.width, row.height, row.kind) == (
        rec.item_hash,
        "patch_001.png",
        32,
        24,
        "patch",
    )
    assert (row.reader, row.model_set, row.label, row.version) == (
        "reader a",
        "bach-v1",
        "invasive",
        1,
    )
    assert row.mpp == pytest.approx(0.42) and row.note == "BACH ground truth: invasive"
    assert str(row.created_at.tz) == "UTC"

    preds = store.predictions_frame().set_index("model")
    assert preds.loc["resnet18-lran", "probabilities"] == rec.predictions["resnet18-lran"]
    assert preds.loc["resnet18-lran", "predicted_class"] == "invasive"
    assert preds.loc["resnet18", "predicted_class"] == "benign"
    assert preds.loc["resnet18", "p_in situ"] == pytest.approx(0.1)

    scores = store.scores_frame()
    assert list(scores["map"]) == ["cam", "gate1"]
    assert set(SCORE_NAMES) <= set(scores.columns)
    assert list(scores["cam_class"].fillna("-")) == ["invasive", "-"]
    assert (
        list(scores["tolerance_px"]) == [15.0, 15.0] and list(scores["tolerance_um"]) == [6.3] * 2
    )
    for stored, given in zip(scores.to_dict("records"), rec.scores, strict=True):
        assert stored["review_id"] == saved.review_id and stored["reader"] == "reader a"
        assert bool(stored["pointing_game"]) is given.pointing_game
        for name in SCORE_NAMES[1:]:
            assert stored[name] == pytest.approx(getattr(given, name))


def test_undefined_scores_are_stored_as_null(db_url):
    store = Store(db_url)
    rec = make_record()
    empty = agreement(np.ones((24, 32)), np.zeros((24, 32), bool))
    rec.scores = [ScoreRecord.of("m", "cam", "invasive", empty)]
    store.save_review(rec)
    row = store.scores_frame().iloc[0]
    assert np.isnan(row["auroc"]) and np.isnan(row["iou_mean"])
    assert row["pointing_game"] is pd.NA  # an empty region: undefined, not a miss


def test_versions_accumulate_and_nothing_is_overwritten(db_url):
    store = Store(db_url)
    first = store.save_review(make_record(label="in situ", seed=0))
    second = store.save_review(make_record(label="invasive", seed=3))
    other_reader = store.save_review(make_record(reader="reader b", seed=1))
    assert (first.version, second.version, other_reader.version) == (1, 2, 1)

    # Version 1 is intact: its label, mask and scores are the first save's.
    assert np.array_equal(store.get_mask(first.review_id), make_record(seed=0).mask)
    assert not np.array_equal(store.get_mask(second.review_id), make_record(seed=0).mask)
    reviews = store.reviews_frame(reader="reader a").set_index("version")
    assert reviews.loc[1, "label"] == "in situ" and reviews.loc[2, "label"] == "invasive"
    assert len(store.scores_frame(reader="reader a")) == 4

    latest = store.reviews_frame(latest_only=True)
    assert sorted(zip(latest.reader, latest.version, strict=True)) == [
        ("reader a", 2),
        ("reader b", 1),
    ]
    assert len(store.reviews_frame(item_hash="0" * 64)) == 0
    assert len(store.reviews_frame(model_set="bach-v1")) == 3


def test_latest_reads_are_per_study(db_url):
    """A reader's newer read of the same image in another study does not hide this study's."""
    store = Store(db_url)
    rec = make_record()
    item = ItemRecord(rec.item_hash, rec.filename, rec.width, rec.height, rec.kind, rec.mpp)
    studies = []
    for name in ("study A", "study B"):
        study = store.create_study(name, "BACH", "open", "bach-v1")
        case, _ = store.add_case(study.study_id, item, b"patch bytes", "", "reader a")
        studies.append(study.study_id)
        saved = store.save_review(
            make_record(study_id=study.study_id, case_id=case.case_id, read_kind="open")
        )
    assert saved.version == 2  # versions count a reader's reads of the image across studies
    for study_id, version in zip(studies, (1, 2), strict=True):
        latest = store.reviews_frame(study_id=study_id, latest_only=True)
        assert list(latest.version) == [version]
        assert len(store.scores_frame(study_id=study_id, latest_only=True)) == 2
    everywhere = store.reviews_frame(latest_only=True)
    assert sorted(everywhere.version) == [1, 2]


def test_a_time_with_an_offset_is_stored_as_the_same_moment_in_utc(db_url):
    # SQLite's DateTime drops the offset and reads give the stored time back as UTC: 10:00+02:00
    # came back as 10:00 UTC, two hours late. PostgreSQL's timestamptz kept the moment.
    store = Store(db_url)
    aware = store.save_review(
        make_record(created_at=datetime.fromisoformat("2024-05-01T10:00:00+02:00"))
    )
    naive = store.save_review(make_record(created_at=datetime(2024, 5, 1, 10, 0)))  # UTC
    times = store.reviews_frame().set_index("review_id").created_at
    assert times[aware.review_id] == pd.Timestamp("2024-05-01T08:00:00", tz="UTC")
    assert times[naive.review_id] == pd.Timestamp("2024-05-01T10:00:00", tz="UTC")
    # The same for a study and a case's addition and removal, restored by a study import.
    study = store.create_study(
        "restored",
        "IDC",
        "open",
        "idc",
        created_at=datetime.fromisoformat("2024-05-01T10:00+02:00"),
    )
    assert store.study(study.study_id).created_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    rec = make_record()
    item = ItemRecord(rec.item_hash, rec.filename, rec.width, rec.height, rec.kind, rec.mpp)
    case, _ = store.add_case(
        study.study_id,
        item,
        b"patch bytes",
        "",
        "admin",
        added_at=datetime.fromisoformat("2024-05-01T11:00:00-01:00"),
    )
    store.remove_case(case.case_id, "dr-b", removed_at=datetime(2024, 5, 2, 9, 30))
    back = store.cases(study.study_id, removed=True)[0]
    assert (back.added_at, back.added_by, back.removed_at, back.removed_by) == (
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "admin",
        datetime(2024, 5, 2, 9, 30, tzinfo=UTC),
        "dr-b",
    )
    assert store.case(case.case_id) == back


def test_account_names_that_differ_only_in_case_are_one_account(db_url):
    # Sign-in matches names with str.casefold: the store must refuse the same names, on every
    # backend (SQLite's lower() folds ASCII only; neither lower() folds "ß" as casefold does).
    store = Store(db_url)
    store.add_reader("Élodie", None)
    store.add_reader("Straße", None)
    for same, taken in [("élodie", "Élodie"), ("ÉLODIE", "Élodie"), ("STRASSE", "Straße")]:
        with pytest.raises(ValueError, match=f"an account named '{taken}' exists already"):
            store.add_reader(same, None)
    assert sorted(r.name for r in store.readers()) == ["Straße", "Élodie"]
    # An operator names the account as readers sign in: in any case.
    store.update_reader("élodie", disabled=True)
    store.update_reader("STRASSE", role="admin")
    assert store.reader("ÉLODIE").disabled and store.reader("straße").role == "admin"
    with pytest.raises(KeyError, match="no account named 'elodie'"):
        store.update_reader("elodie", disabled=True)


def test_a_case_without_image_bytes_is_only_for_images_never_kept(db_url):
    # A first-release review's image was never kept: a study export of it restores its case
    # without bytes; bytes that are given must still be the image's.
    store = Store(db_url)
    study = store.create_study("restored", "IDC", "open", "idc")
    rec = make_record()
    item = ItemRecord(rec.item_hash, rec.filename, rec.width, rec.height, rec.kind, rec.mpp)
    with pytest.raises(ValueError, match="do not match its hash"):
        store.add_case(study.study_id, item, b"other bytes", "", None)
    case, new = store.add_case(study.study_id, item, None, "", None)
    assert new and store.cases(study.study_id) == [case]
    assert store.image_bytes(item.item_hash) is None


def test_two_accounts_of_one_name_created_at_once_are_one(db_url):
    # Two sessions create "Élodie" and "élodie" at the same moment: the names are compared in
    # Python, so both could find the name free; one must be refused.
    stores = [Store(db_url), Store(db_url)]

    def create(store: Store, name: str, barrier: threading.Barrier, outcomes: list[str]) -> None:
        barrier.wait()
        try:
            store.add_reader(name, None)
            outcomes.append("created")
        except ValueError:
            outcomes.append("refused")

    for round_ in range(4):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        names = [f"Élodie{round_}", f"élodie{round_}"]
        threads = [
            threading.Thread(target=create, args=(s, n, barrier, outcomes))
            for s, n in zip(stores, names, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["created", "refused"], (round_, outcomes)
    assert len(stores[0].readers()) == 4


def test_two_writers_at_once(db_url):
    # Two Store objects (two connection pools, as two app sessions would have) save reviews of
    # the same item by the same reader at the same moment.
    stores = [Store(db_url), Store(db_url)]
    barrier = threading.Barrier(2)
    results: list[SavedReview] = []
    errors: list[BaseException] = []

    def write(store: Store, seed: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                results.append(store.save_review(make_record(seed=seed + i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, 10 * k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.version for r in results) == list(range(1, 11))
    frame = stores[0].reviews_frame()
    assert sorted(frame.version) == list(range(1, 11))
    assert len(set(frame.review_id)) == 10
    assert len(stores[1].scores_frame()) == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": np.zeros((10, 10), dtype=bool)}, "mask shape"),
        ({"reader": "  "}, "reader"),
        ({"label": ""}, "label"),
        ({"kind": "slide"}, "kind"),
        ({"item_hash": "abc"}, "sha256"),
        ({"scores": [{"model": "m", "map": "cam"}]}, "ScoreRecord"),
        ({"reader": "reference:mask.png"}, "kept for imported references"),
        ({"reader": "x" * 201}, "at most 200"),
        ({"note": "n" * 20_001}, "at most 20,000"),
        ({"mpp": float("inf")}, "mpp"),
        ({"predictions": {"m": {"benign": float("nan")}}}, "finite"),
    ],
)
def test_invalid_input_stores_nothing(db_url, change, message):
    store = Store(db_url)
    with pytest.raises(ValueError, match=message):
        store.save_review(make_record(**change))
    assert store.item_hashes() == []
    assert len(store.reviews_frame()) == 0


def test_failure_inside_the_transaction_stores_nothing(db_url, monkeypatch):
    store = Store(db_url)

    # The review row is already flushed to the database when the scores are added; a failure
    # there must take the item, the review and the predictions back with it.
    def broken_add_all(self, instances):
        raise sa.exc.OperationalError("INSERT INTO scores", {}, OSError("disk full"))

    monkeypatch.setattr(Session, "add_all", broken_add_all)
    with pytest.raises(StoreError, match="disk full"):
        store.save_review(make_record())
    monkeypatch.undo()
    assert store.item_hashes() == []
    assert len(store.reviews_frame()) == 0
    assert len(store.predictions_frame()) == 0
    assert store.save_review(make_record()).version == 1


def test_item_size_conflict_is_refused(db_url):
    store = Store(db_url)
    store.save_review(make_record())
    bigger = make_record(width=64, height=48, mask=np.zeros((48, 64), dtype=bool))
    with pytest.raises(ValueError, match="32 x 24"):
        store.save_review(bigger)
    assert len(store.reviews_frame()) == 1


def test_a_newer_schema_revision_is_refused(db_url):
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match=r"revision '9999'.*upgrade LRAN Review"):
        Store(db_url)


def test_unopenable_databases(tmp_path):
    with pytest.raises(StoreError, match="cannot open review database"):
        Store(f"sqlite:///{tmp_path / 'no such dir' / 'reviews.sqlite'}")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match="not a database"):
        Store(f"sqlite:///{garbage}")
    foreign = tmp_path / "foreign.sqlite"
    engine = sa.create_engine(f"sqlite:///{foreign}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with pytest.raises(StoreError, match="not an LRAN Review database"):
        Store(f"sqlite:///{foreign}")
    with pytest.raises(StoreError, match="cannot use database URL"):
        Store("nosuchdialect://x")


@pytest.mark.parametrize("folder", ["study#2", "50% done", "what?"])
def test_a_sqlite_path_with_uri_characters_is_the_file_written(tmp_path, folder):
    # The store reopens its file as a SQLite URI: "#", "%" and "?" in the path once cut it
    # short, so the writes went to a new file beside the folder, without tables.
    path = tmp_path / folder / "reviews.sqlite"
    path.parent.mkdir()
    url = sa.URL.create("sqlite", database=str(path)).render_as_string()
    store = Store(url)
    saved = store.save_review(make_record())
    assert store.reviews_frame()["review_id"].tolist() == [saved.review_id]
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    assert Store(url).reviews_frame()["review_id"].tolist() == [saved.review_id]


def test_default_url_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "env.sqlite"
    monkeypatch.setenv("LRAN_REVIEW_DB", f"sqlite:///{path}")
    store = Store()
    store.save_review(make_record())
    assert path.exists()
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("SELECT count(*) FROM reviews").scalar() == 1


# ---------------------------------------------------------------------------------------------
# Migrations


V1_FIXTURE = Path(__file__).parent / "fixtures" / "reviews-v1.sqlite"


def _v1_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of the first release's tables, in a stable order."""
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for table, order in [
            ("items", "hash"),
            ("reviews", "id"),
            ("predictions", "id"),
            ("scores", "id"),
        ]:
            columns = {
                "items": "hash, filename, width, height, kind, mpp",
                "reviews": "id, item_hash, reader, model_set, label, version, mask_png, geojson, "
                "note",
                "predictions": "id, review_id, model, predicted_class",
                "scores": "id, review_id, model, map, pointing_game, energy_pointing_game, "
                "iou_50, iou_mean, dice_50, dice_mean, auroc",
            }[table]
            out[table] = [
                tuple(r)
                for r in conn.exec_driver_sql(f"SELECT {columns} FROM {table} ORDER BY {order}")
            ]
    engine.dispose()
    return out


def test_a_first_release_sqlite_file_migrates_keeping_every_row(tmp_path):
    # tests/fixtures/reviews-v1.sqlite was written by the first release's own Store (commit
    # 1ec9ead): patch reviews in two versions, an empty region, a region review with its note,
    # and an imported reference.
    path = tmp_path / "v1.sqlite"
    shutil.copy(V1_FIXTURE, path)
    url = f"sqlite:///{path}"
    before = _v1_rows(url)
    assert len(before["reviews"]) == 6 and len(before["scores"]) == 39
    store = Store(url)
    assert _v1_rows(url) == before
    reviews = store.reviews_frame().set_index("review_id")
    region, reference = reviews.loc[5], reviews.loc[6]
    assert region.mpp == pytest.approx(4.67) and region.overlap == pytest.approx(0.5)
    assert not region.is_reference and reference.is_reference
    assert reference.imported_by == "dr-a"
    assert reviews.loc[4].mpp == pytest.approx(4.0)  # a patch: the item's mpp
    scores = store.scores_frame()
    region_cams = scores[(scores.review_id == 5) & scores["map"].isin(["cam", "probability"])]
    assert set(region_cams.cam_class) == {"IDC-positive"}
    assert scores[scores.review_id < 5].cam_class.isna().all()  # never recorded for patches
    assert (scores.tolerance_px == 15.0).all()
    # Reviews made before studies: open reads (the maps were on screen) of their own study,
    # one case per item; and the blinded default study a fresh install starts in.
    studies = {st.name: st for st in store.studies()}
    earlier = studies["Reviews before studies"]
    assert (earlier.blinding, earlier.label_set) == ("open", "IDC")
    assert studies["Default study"].blinding == "blinded"
    assert list(reviews.read_kind) == ["open"] * 5 + ["reference"]
    assert set(reviews.study_id) == {earlier.study_id}
    assert list(reviews.kind) == ["patch"] * 4 + ["region"] * 2
    cases = store.cases(earlier.study_id)
    assert [c.group for c in cases] == ["patient 10253", "p2.png", "A03_8.png"]
    assert reviews.visible.iloc[0] == ["image", "predictions", "maps", "model names"]
    # It opens again without migrating twice, and takes new reviews.
    assert Store(url).save_review(make_record()).version == 1


@contextlib.contextmanager
def _at_revision(url: str, revision: str) -> Iterator[sa.Connection]:
    """A connection to a new database at an earlier schema ``revision``, for rows written as
    that release wrote them (committed when the block ends)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
            yield conn
    finally:
        engine.dispose()


def test_a_first_release_database_migrates_on_every_backend(db_url):
    # The first release's schema (revision 0001) with rows written as it wrote them.
    with _at_revision(db_url, "0001") as conn:
        conn.exec_driver_sql(
            "INSERT INTO items (hash, filename, width, height, kind, mpp, created_at) VALUES "
            f"('{'a' * 64}', 'A03_8.png', 160, 120, 'region', 4.67, CURRENT_TIMESTAMP)"
        )
        for i, reader in enumerate(["dr-a", "reference:A03_8_mask.png"], start=1):
            note = (
                "label mask A03_8_mask.png (sha256 0123) imported by dr-b; region = labels "
                "above 0; "
                if i == 2
                else ""
            ) + ("region maps at 4.67 um/px, class IDC-positive, tiles overlapping 25% (x)")
            conn.execute(
                sa.text(
                    "INSERT INTO reviews (id, item_hash, reader, model_set, label, version, "
                    "created_at, mask_png, geojson, note) VALUES (:id, :h, :r, 'idc', 'x', 1, "
                    "CURRENT_TIMESTAMP, :png, '{}', :note)"
                ),
                {"id": i, "h": "a" * 64, "r": reader, "png": b"png", "note": note},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO scores (review_id, model, map, auroc) VALUES (:id, 'resnet18', "
                    "'cam', 0.7), (:id, 'resnet18', 'attention', 0.6)"
                ),
                {"id": i},
            )
    store = Store(db_url)
    reviews = store.reviews_frame().set_index("review_id")
    assert list(reviews.reader) == ["dr-a", "reference:A03_8_mask.png"]
    assert list(reviews.is_reference) == [False, True]
    assert list(reviews.overlap) == [0.25, 0.25] and list(reviews.mpp) == [4.67, 4.67]
    assert reviews.loc[2].imported_by == "dr-b"
    scores = store.scores_frame().set_index(["review_id", "map"])
    assert scores.loc[(1, "cam"), "cam_class"] == "IDC-positive"
    assert pd.isna(scores.loc[(1, "attention"), "cam_class"])
    assert len(scores) == 4 and scores.auroc.tolist() == [0.6, 0.7, 0.6, 0.7]


def test_a_reader_has_a_place_in_each_study_and_keeps_it_through_the_migration(db_url):
    # Revision 0003 kept one place per reader: a glance at another study lost the first's case.
    with _at_revision(db_url, "0003") as conn:
        conn.exec_driver_sql(
            "INSERT INTO studies (id, name, label_set, blinding, anonymise, model_set, created_at)"
            " VALUES (7, 'pilot', 'IDC', 'blinded', false, 'idc', CURRENT_TIMESTAMP)"
        )
        conn.exec_driver_sql(
            "INSERT INTO places (reader, study_id, case_id, updated_at) "
            "VALUES ('dr-a', 7, NULL, CURRENT_TIMESTAMP)"
        )
    store = Store(db_url)
    assert store.place("dr-a") == (7, None) and store.place_in("dr-a", 7) is None
    first = store.create_study("first", "IDC", "blinded", "idc")
    second = store.create_study("second", "IDC", "blinded", "idc")
    item = ItemRecord(content_hash(b"x"), "x.png", 50, 50, "patch", None)
    case_a, _ = store.add_case(first.study_id, item, b"x", "g", None)
    case_b, _ = store.add_case(second.study_id, item, b"x", "g", None)
    store.set_place("dr-a", first.study_id, case_a.case_id)
    store.set_place("dr-a", second.study_id, case_b.case_id)
    assert store.place_in("dr-a", first.study_id) == case_a.case_id
    assert store.place_in("dr-a", second.study_id) == case_b.case_id
    assert store.place("dr-a") == (second.study_id, case_b.case_id)  # the latest
    store.set_place("dr-a", first.study_id, None)
    assert store.place("dr-a") == (first.study_id, None)
    assert store.place_in("dr-a", second.study_id) == case_b.case_id
    assert store.place_in("dr-b", first.study_id) is None and store.place("dr-b") is None


def test_cases_get_their_items_name_through_the_migration(db_url):
    # Revision 0004 kept names on items alone; 0005 gives each case the name it showed.
    with _at_revision(db_url, "0004") as conn:
        conn.exec_driver_sql(
            "INSERT INTO studies (id, name, label_set, blinding, anonymise, model_set, created_at)"
            " VALUES (7, 'pilot', 'IDC', 'blinded', false, 'idc', CURRENT_TIMESTAMP)"
        )
        conn.exec_driver_sql(
            "INSERT INTO items (hash, filename, width, height, kind, mpp, created_at) VALUES "
            f"('{'b' * 64}', 'p.png', 50, 50, 'patch', NULL, CURRENT_TIMESTAMP)"
        )
        conn.exec_driver_sql(
            "INSERT INTO cases (id, study_id, item_hash, position, case_group, added_at) "
            f"VALUES (3, 7, '{'b' * 64}', 0, 'g', CURRENT_TIMESTAMP)"
        )
    store = Store(db_url)
    assert [c.item.filename for c in store.cases(7)] == ["p.png"]
    with store.writing() as session:
        assert session.get(Case, 3).filename == "p.png"


def test_the_migrated_schema_is_the_declared_schema(db_url):
    # Autogenerate compares the migrated database with annotations.schema: no difference.
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head_revision()
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []
