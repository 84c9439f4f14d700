"""The review database: items, readers' reviews (region + label), model predictions and scores.

SQLAlchemy 2; SQLite by default (one file under ``data/``), any SQLAlchemy URL otherwise (e.g.
``postgresql+psycopg://user:pass@host/db``). Rows are only ever added (see
:mod:`annotations.schema`).

Opening a database brings its schema up to date with the Alembic migrations in
``annotations/migrations`` (a first-release database, schema_version 1, included). A database
written by a newer release, or one that is not an LRAN Review database, is refused at open
instead of being guessed at.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Select,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from annotations.blobs import ENV_BLOBS, BlobError, blob_store
from annotations.masks import mask_to_png, png_to_mask
from annotations.records import (
    REFERENCE_PREFIX,
    CaseRecord,
    ItemRecord,
    ReaderRecord,
    ReviewRecord,
    SavedReview,
    StudyRecord,
    check_text,
    content_hash,
    validate,
)
from annotations.schema import (
    BLINDING,
    FILENAME_LENGTH,
    NAME_LENGTH,
    ROLES,
    TABLES,
    Case,
    Draft,
    Item,
    Place,
    Prediction,
    Reader,
    Review,
    Score,
    Study,
    Unblinding,
    insert,
)
from annotations.scores import SCORE_NAMES

ENV_URL = "LRAN_REVIEW_DB"
DEFAULT_DB_PATH = Path(__file__).resolve().parent.parent / "data" / "reviews.sqlite"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_RELEASE_REVISION = "0001"
# The study migration 0003 gives the first release's reviews: its cases' images were never kept.
FIRST_RELEASE_STUDY = "Reviews before studies"
_SQLITE_BUSY_TIMEOUT_S = 10
# Any constant: the key of the PostgreSQL advisory lock that serialises schema migrations.
_MIGRATION_LOCK = 7_312_024
# PostgreSQL: account creations queue on this lock, so that two at once see each other's name.
_ACCOUNTS_LOCK = 7_312_025


class ReadRefused(ValueError):
    """A read the record's rules do not take from this reader now, whatever is tried again: an
    unaided read saved already (locked), or one made after their blinding for the image ended."""


class StoreError(RuntimeError):
    """The review database could not be opened, read or written; the message says why.
    ``locations`` are the database's URL and file as the message names them: server paths, which
    a reader-facing message may replace."""

    def __init__(self, message: str, locations: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.locations = tuple(locations)


def default_url() -> str:
    """The database URL used when none is given: env LRAN_REVIEW_DB, else the SQLite file
    data/reviews.sqlite of the repository (its folder is created)."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return url
    DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(DEFAULT_DB_PATH)).render_as_string()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for running the migrations on ``connection`` (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this program knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no schema migrations found in {MIGRATIONS}")
    return head


class Store:
    """Access to the review database.

    ``Store(url)`` opens (and on first use creates) the database at a SQLAlchemy URL; None means
    :func:`default_url`. SQLite gets WAL journaling (readers never block the writer), a 10 s
    busy timeout and enforced foreign keys. Raises StoreError when the database cannot be
    opened, is not an LRAN Review database, or was written by a newer release.
    """

    def __init__(self, url: str | None = None, blobs: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine = create_engine(self.url)
        except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot use database URL {self.url!r}: {exc}", [repr(self.url)]
            ) from exc
        self._label = self.engine.url.render_as_string(hide_password=True)
        self._is_sqlite = self.engine.dialect.name == "sqlite"
        self._file = sqlite_path(self.engine.url)
        if self._is_sqlite:
            _configure_sqlite(self.engine)
        # SQLite: take the write lock at BEGIN, so that two writers queue on busy_timeout instead
        # of one failing when it upgrades its read snapshot to a write.
        self._write_engine = self.engine.execution_options(lran_begin="BEGIN IMMEDIATE")
        self._migrate()
        self._identity = self._file_identity()
        if self._file is not None:
            # From now on connections open the file read-write but never create it: a database
            # deleted under the app must fail loudly, not come back empty.
            self.engine.dispose()
            # Built, not parsed: "#", "%" or "?" in the path would cut a parsed URL short.
            self.engine = create_engine(
                URL.create(
                    "sqlite",
                    database=f"file:{quote(str(self._file))}",
                    query={"mode": "rw", "uri": "true"},
                )
            )
            _configure_sqlite(self.engine)
            self._write_engine = self.engine.execution_options(lran_begin="BEGIN IMMEDIATE")
        # The transaction that :meth:`writing` has open, per thread: app sessions share a store.
        self._open = threading.local()
        self.blobs = blob_store(
            blobs if blobs is not None else os.environ.get(ENV_BLOBS), self._file
        )

    def __repr__(self) -> str:
        return f"Store({self._label!r})"

    def close(self) -> None:
        """Release the connection pool (the Store can still be used; it reconnects)."""
        self.engine.dispose()

    def _fail(self, action: str, exc: Exception) -> StoreError:
        detail = getattr(exc, "orig", None) or exc
        return self._error(f"cannot {action} review database {self._label}: {detail}")

    def _error(self, message: str) -> StoreError:
        """A StoreError that knows where this database is (its URL, and its file for SQLite)."""
        return StoreError(message, [self._label, *([str(self._file)] if self._file else [])])

    # -----------------------------------------------------------------------------------------
    # Opening and migrating

    def _migrate(self) -> None:
        try:
            with self._write_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Two processes opening a new database at once: one migrates, the other
                    # waits and then finds it up to date.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                config = alembic_config(conn)
                current = self._current_revision(conn, config)
                if current != head_revision():
                    command.upgrade(config, "head")
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail("open", exc) from exc
        try:
            missing = TABLES - set(inspect(self.engine).get_table_names())
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail("open", exc) from exc
        if missing:
            raise self._error(f"review database {self._label} lacks tables {sorted(missing)}")

    def _current_revision(self, conn: Connection, config: Config) -> str | None:
        """The database's revision (None when empty), stamping a first-release database;
        refuses foreign databases and ones from a newer release."""
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables:
            if not tables:
                return None
            if "schema_version" not in tables:
                raise self._error(
                    f"{self._label} is not an LRAN Review database (it has tables "
                    f"{sorted(tables)[:5]} but no schema version); point LRAN_REVIEW_DB at "
                    "another database"
                )
            versions = list(conn.execute(text("SELECT version FROM schema_version")).scalars())
            if versions != [1]:
                raise self._error(
                    f"review database {self._label} has schema version {versions}, which this "
                    "program does not know; upgrade LRAN Review to open it"
                )
            command.stamp(config, FIRST_RELEASE_REVISION)
        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            raise self._error(
                f"review database {self._label} has schema revision {current!r}, newer than this "
                f"program's {head_revision()!r}; upgrade LRAN Review to open it"
            )
        return current

    # -----------------------------------------------------------------------------------------
    # The SQLite file under our feet

    def _file_identity(self) -> tuple[int, int] | None:
        if self._file is None:
            return None
        try:
            st = self._file.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_file(self) -> None:
        """Refuses to write when the SQLite file at the configured path is no longer the one
        this store opened (deleted, or replaced by a restore): rows written through the open
        connection would go to the unlinked file and vanish."""
        if self._file is None:
            return
        now = self._file_identity()
        if now != self._identity:
            self.engine.dispose()
            what = "deleted" if now is None else "replaced by another file"
            raise self._error(
                f"the review database file {self._file} was {what} while the app was running; "
                "nothing was saved. Restart the app (or restore the file) before saving again"
            )

    # -----------------------------------------------------------------------------------------
    # Writing

    def save_review(self, rec: ReviewRecord) -> SavedReview:
        """Stores one review in one transaction: the item (if new), the review with the next
        version for (item, reader), its predictions and its scores. Gives SavedReview(review_id,
        version) once the rows are committed to the database file at the configured URL.

        Raises ValueError for invalid input (before touching the database) and StoreError when
        the database cannot be written or its file was deleted or replaced; either way nothing
        is stored.
        """
        mask = validate(rec)
        png = mask_to_png(mask)
        geojson = json.dumps(rec.geojson)
        with self.writing() as session:
            saved = self._insert(session, rec, png, geojson)
        return saved

    def _insert(self, session: Session, rec: ReviewRecord, png: bytes, geojson: str) -> SavedReview:
        """Adds one review's rows to ``session``; gives where it landed. A given
        ``rec.created_at`` is stored in UTC (a naive one is taken as UTC), else now."""
        now = datetime.now(UTC)
        # The item row is the lock that orders concurrent saves of one item (PostgreSQL; SQLite
        # already serialises writers at BEGIN IMMEDIATE): each sees the previous version.
        item = ItemRecord(rec.item_hash, rec.filename, rec.width, rec.height, rec.kind, rec.mpp)
        self._ensure_item(session, item, now)
        latest = session.execute(
            select(func.max(Review.version)).where(
                Review.item_hash == rec.item_hash, Review.reader == rec.reader
            )
        ).scalar_one()
        version = (latest or 0) + 1
        if rec.read_kind == "unaided":
            # The unaided read is the reference every later read is compared with: one per
            # reader and case, locked once saved.
            earlier = session.execute(
                select(Review.id).where(
                    Review.case_id == rec.case_id,
                    Review.reader == rec.reader,
                    Review.read_kind == "unaided",
                )
            ).first()
            if earlier is not None:
                raise ReadRefused(
                    "the unaided read of this case is saved and locked; save an aided read"
                )
            # Checked here, not only by the page: another tab may still show the case unread.
            # By image: others' reads seen in one study are seen for the image in any other.
            # A read made before (one restored from an export) was blinded when it was made.
            made = _utc(rec.created_at) or now
            seen = session.execute(
                select(Unblinding.case_id)
                .join(Case, Case.id == Unblinding.case_id)
                .where(
                    Unblinding.reader == rec.reader,
                    Case.item_hash == rec.item_hash,
                    Unblinding.at <= made,
                )
                .limit(1)
            ).first()
            if seen is not None:
                raise ReadRefused(
                    "your blinding for this image ended (you chose to see others' reads of "
                    "it): an unaided read of it would not be blinded"
                )
        if rec.parent_id is not None:
            parent = session.get(Review, rec.parent_id)
            if parent is None or (parent.reader, parent.item_hash) != (rec.reader, rec.item_hash):
                raise ValueError(
                    "an aided read's parent must be the same reader's read of the item"
                )
        review = Review(
            item_hash=rec.item_hash,
            reader=rec.reader,
            model_set=rec.model_set,
            label=rec.label,
            version=version,
            created_at=_utc(rec.created_at) or now,
            mask_png=png,
            geojson=geojson,
            note=rec.note,
            mpp=rec.mpp,
            overlap=rec.overlap,
            is_reference=rec.is_reference,
            imported_by=rec.imported_by,
            study_id=rec.study_id,
            case_id=rec.case_id,
            kind=rec.kind,
            read_kind=rec.read_kind,
            blinded=rec.blinded,
            visible=list(rec.visible),
            confidence=None if rec.confidence is None else int(rec.confidence),
            no_region=rec.no_region,
            parent_id=rec.parent_id,
            anonymised=rec.anonymised,
            best_map=rec.best_map,
            label_set=rec.label_set,
        )
        session.add(review)
        session.flush()
        for model, probs in rec.predictions.items():
            clean = {str(k): float(v) for k, v in probs.items()}
            session.add(
                Prediction(
                    review_id=review.id,
                    model=model,
                    predicted_class=max(clean, key=clean.__getitem__),
                    probabilities=clean,
                )
            )
        session.add_all(
            Score(
                review_id=review.id,
                model=s.model,
                map=s.map,
                cam_class=s.cam_class,
                tolerance_px=s.tolerance_px,
                tolerance_um=s.tolerance_um,
                pointing_game=None if s.pointing_game is None else bool(s.pointing_game),
                **{n: s.values()[n] for n in SCORE_NAMES[1:]},
            )
            for s in rec.scores
        )
        session.flush()
        return SavedReview(review_id=review.id, version=version)

    # -----------------------------------------------------------------------------------------
    # Reading

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        try:
            with Session(self.engine) as session:
                yield session
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail("read", exc) from exc

    def _review_query(
        self,
        reader: str | None,
        model_set: str | None,
        item_hash: str | None,
        latest_only: bool,
        references: bool,
        study_id: int | None = None,
    ) -> Select[Any]:
        query: Select[Any] = (
            select(  # type: ignore[assignment]
                Review.id.label("review_id"),
                Review.item_hash,
                # The case's name in its study where the read has one; the item's first otherwise.
                func.coalesce(Case.filename, Item.filename).label("filename"),
                Item.width,
                Item.height,
                Review.kind,
                Review.mpp,
                Review.overlap,
                Review.reader,
                Review.is_reference,
                Review.imported_by,
                Review.model_set,
                Review.label,
                Review.version,
                Review.created_at,
                Review.note,
                Review.study_id,
                Review.case_id,
                Review.read_kind,
                Review.blinded,
                Review.visible,
                Review.confidence,
                Review.no_region,
                Review.parent_id,
                Review.anonymised,
                Review.best_map,
                Review.label_set,
            )
            .join(Item, Item.hash == Review.item_hash)
            .outerjoin(Case, Case.id == Review.case_id)
        )
        if reader is not None:
            query = query.where(Review.reader == reader)
        if model_set is not None:
            query = query.where(Review.model_set == model_set)
        if item_hash is not None:
            query = query.where(Review.item_hash == item_hash)
        if study_id is not None:
            query = query.where(Review.study_id == study_id)
        if not references:
            query = query.where(Review.is_reference.is_(False))
        if latest_only:
            # A reader's last version of each kind of read of an item in each study (an aided
            # read does not hide the unaided one it followed, nor a read of the same image in
            # another study this one). Reads outside studies are one group.
            study = func.coalesce(Review.study_id, 0)
            latest = (
                select(
                    Review.item_hash.label("h"),
                    Review.reader.label("r"),
                    Review.read_kind.label("k"),
                    study.label("s"),
                    func.max(Review.version).label("v"),
                )
                .group_by(Review.item_hash, Review.reader, Review.read_kind, study)
                .subquery()
            )
            query = query.join(
                latest,
                (latest.c.h == Review.item_hash)
                & (latest.c.r == Review.reader)
                & (latest.c.k == Review.read_kind)
                & (latest.c.s == study)
                & (latest.c.v == Review.version),
            )
        return query

    def _frame(self, query: Select[Any]) -> pd.DataFrame:
        with self._reading() as session:
            rows = session.execute(query).all()
        columns = [c.name for c in query.selected_columns]
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        if "created_at" in frame:
            # SQLite returns naive datetimes; every timestamp here was written in UTC.
            frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        for flag in ("is_reference", "blinded", "no_region"):
            if flag in frame:
                frame[flag] = frame[flag].astype(bool)
        return frame

    def reviews_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
        references: bool = True,
        study_id: int | None = None,
    ) -> pd.DataFrame:
        """One row per review, ordered by review_id, with columns review_id, item_hash,
        filename, width, height, kind, mpp, overlap, reader, is_reference, imported_by,
        model_set, label, version, created_at (UTC), note.

        Filters: ``reader``, ``model_set``, ``item_hash``, ``study_id``; ``latest_only`` keeps
        each reader's last version of each kind of read of an item in each study;
        ``references=False`` leaves imported references out.
        """
        query = self._review_query(reader, model_set, item_hash, latest_only, references, study_id)
        return self._frame(query.order_by(Review.id))

    def predictions_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
        references: bool = True,
        study_id: int | None = None,
    ) -> pd.DataFrame:
        """One row per (review, model): the columns of :meth:`reviews_frame` plus model,
        predicted_class, probabilities (dict class -> probability) and one column ``p_<class>``
        per class name seen."""
        base = self._review_query(
            reader, model_set, item_hash, latest_only, references, study_id
        ).subquery()
        query = (
            select(base, Prediction.model, Prediction.predicted_class, Prediction.probabilities)
            .join(Prediction, Prediction.review_id == base.c.review_id)
            .order_by(base.c.review_id, Prediction.model)
        )
        frame = self._frame(query)
        classes = sorted({k for probs in frame["probabilities"] for k in probs})
        for cls in classes:
            frame[f"p_{cls}"] = [probs.get(cls, np.nan) for probs in frame["probabilities"]]
        return frame

    def scores_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
        references: bool = True,
        study_id: int | None = None,
    ) -> pd.DataFrame:
        """One row per (review, model, map): the columns of :meth:`reviews_frame` plus model,
        map, cam_class, tolerance_px, tolerance_um and one column per name in SCORE_NAMES:
        pointing_game as pandas "boolean", the others float, undefined ones <NA> / NaN."""
        base = self._review_query(
            reader, model_set, item_hash, latest_only, references, study_id
        ).subquery()
        score_cols = [getattr(Score, name) for name in SCORE_NAMES]
        query = (
            select(
                base,
                Score.model,
                Score.map,
                Score.cam_class,
                Score.tolerance_px,
                Score.tolerance_um,
                *score_cols,
            )
            .join(Score, Score.review_id == base.c.review_id)
            .order_by(base.c.review_id, Score.model, Score.map)
        )
        frame = self._frame(query)
        # Analysis-ready dtypes: undefined scores (NULL) become <NA> / NaN.
        frame["pointing_game"] = frame["pointing_game"].astype("boolean")
        for name in (*SCORE_NAMES[1:], "tolerance_px", "tolerance_um"):
            frame[name] = pd.to_numeric(frame[name]).astype(float)
        return frame

    def _region(self, review_id: int) -> tuple[bytes, str]:
        """The stored (mask PNG, GeoJSON text) of a review; KeyError if there is none."""
        png, geojson = self._review_values(review_id, Review.mask_png, Review.geojson)
        return png, geojson

    def _review_values(self, review_id: int, *columns: Any) -> tuple[Any, ...]:
        """Some columns of one review; KeyError if there is none."""
        with self._reading() as session:
            row = session.execute(select(*columns).where(Review.id == int(review_id))).one_or_none()
        if row is None:
            raise KeyError(f"no review with id {review_id}")
        return tuple(row)

    def get_mask(self, review_id: int) -> np.ndarray:
        """The region of a review as a bool (height, width) mask. KeyError if there is no such
        review."""
        return png_to_mask(self._region(review_id)[0])

    def get_geojson(self, review_id: int) -> dict[str, Any]:
        """The region of a review as the GeoJSON dict that was saved. KeyError if unknown."""
        geojson: dict[str, Any] = json.loads(self._region(review_id)[1])
        return geojson

    def read_scale(self, review_id: int) -> tuple[str, float | None]:
        """How a review read its image: ('patch' or 'region', µm/px or None). KeyError if
        there is no such review."""
        kind, mpp = self._review_values(review_id, Review.kind, Review.mpp)
        return str(kind), None if mpp is None else float(mpp)

    def item_hashes(self) -> list[str]:
        """Hashes of every item with at least one stored review, sorted."""
        with self._reading() as session:
            return list(session.execute(select(Item.hash).order_by(Item.hash)).scalars())

    # -----------------------------------------------------------------------------------------
    # Studies and their cases

    @contextmanager
    def writing(self, action: str = "write to") -> Iterator[Session]:
        """A write transaction on the database (see :meth:`save_review` for the guarantees):
        committed when the block ends, rolled back on an exception. ValueError passes through;
        database failures become StoreError.

        Writes made inside an open block, by this thread, join its transaction: the block
        commits all of them or none (a study import: the study, its cases and its reads)."""
        joined: Session | None = getattr(self._open, "session", None)
        if joined is not None:
            yield joined
            return
        self._check_file()
        try:
            with Session(self._write_engine) as session, session.begin():
                self._open.session = session
                try:
                    yield session
                finally:
                    self._open.session = None
        except (ValueError, StoreError, BlobError):
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail(action, exc) from exc
        self._check_file()
        self._empty_wal()

    def _empty_wal(self) -> None:
        """SQLite: moves the committed write from the WAL file into the database file and
        empties the WAL. A WAL file belongs to whatever database file is at its path: frames
        left in it would be applied to a file restored there (``mv backup reviews.sqlite``), and
        the confirmed saves they hold would be missing from the file that is moved away."""
        if not self._is_sqlite:
            return
        try:
            raw = self.engine.raw_connection()
        except SQLAlchemyError:
            return  # committed all the same; the next write empties the WAL
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        except sqlite3.Error:
            pass  # a long reader held it back; committed all the same, the next write retries
        finally:
            raw.close()

    def create_study(
        self,
        name: str,
        label_set: str,
        blinding: str,
        model_set: str,
        anonymise: bool = False,
        created_by: str | None = None,
        *,
        created_at: datetime | None = None,
    ) -> StudyRecord:
        """Creates a study; ValueError when the name is taken or a value is not allowed.
        ``created_at``: only when restoring a study (a naive time is taken as UTC); else now."""
        name = name.strip()
        if not name or len(name) > NAME_LENGTH:
            raise ValueError(f"a study needs a name of 1 to {NAME_LENGTH} characters")
        if blinding not in BLINDING:
            raise ValueError(f"blinding must be one of {BLINDING}, got {blinding!r}")
        with self.writing() as session:
            if session.execute(select(Study.id).where(Study.name == name)).first():
                raise ValueError(f"a study named {name!r} exists already")
            study = Study(
                name=name,
                label_set=label_set,
                blinding=blinding,
                anonymise=anonymise,
                model_set=model_set,
                created_at=_utc(created_at) or datetime.now(UTC),
                created_by=created_by,
            )
            session.add(study)
            session.flush()
            return _study(study)

    def studies(self) -> list[StudyRecord]:
        """Every study, oldest first."""
        with self._reading() as session:
            return [_study(s) for s in session.execute(select(Study).order_by(Study.id)).scalars()]

    def study(self, study_id: int) -> StudyRecord:
        """One study; KeyError when there is none with that id."""
        with self._reading() as session:
            found = session.get(Study, int(study_id))
            if found is None:
                raise KeyError(f"no study with id {study_id}")
            return _study(found)

    def add_case(
        self,
        study_id: int,
        item: ItemRecord,
        data: bytes | None,
        group: str,
        added_by: str | None,
        *,
        added_at: datetime | None = None,
    ) -> tuple[CaseRecord, bool]:
        """Adds an image to a study as a case at the end of its worklist, keeping its bytes
        (once, by content hash). Gives the case and whether it is new; an image already in the
        study is not added twice (a removed one comes back, its reads intact).

        ``data`` is None only when restoring a case whose bytes were never kept (a first-release
        review's image, in the study FIRST_RELEASE_STUDY): the case is added without them
        and :meth:`image_bytes` gives None for it, as in the database it came from.
        ``added_at``: only when restoring a study (a naive time is taken as UTC); else now.
        ValueError when the bytes do not match the item's hash."""
        if data is not None and content_hash(data) != item.item_hash:
            raise ValueError("the image's bytes do not match its hash")
        now = datetime.now(UTC)
        with self.writing() as session:
            self._ensure_item(session, item, now)
            if data is not None:
                self.blobs.put(session, item.item_hash, data)
            case = session.execute(
                select(Case).where(Case.study_id == study_id, Case.item_hash == item.item_hash)
            ).scalar()
            new = case is None
            if case is None:
                last = session.execute(
                    select(func.max(Case.position)).where(Case.study_id == study_id)
                ).scalar()
                case = Case(
                    study_id=study_id,
                    item_hash=item.item_hash,
                    position=0 if last is None else last + 1,
                    case_group=group[:FILENAME_LENGTH],
                    filename=item.filename[:FILENAME_LENGTH],
                    added_at=_utc(added_at) or now,
                    added_by=added_by,
                )
                session.add(case)
            elif case.removed_at is not None:
                case.removed_at, case.removed_by, new = None, None, True
            session.flush()
            return _case(case, session.get(Item, item.item_hash)), new

    def _ensure_item(self, session: Session, item: ItemRecord, now: datetime) -> Item:
        values = {
            "hash": item.item_hash,
            "filename": item.filename[:FILENAME_LENGTH],
            "width": int(item.width),
            "height": int(item.height),
            "kind": item.kind,
            "mpp": item.mpp,
            "created_at": now,
        }
        session.execute(insert(session, Item).values(**values).on_conflict_do_nothing())
        stored = session.execute(
            select(Item).where(Item.hash == item.item_hash).with_for_update()
        ).scalar_one()
        if (stored.width, stored.height) != (item.width, item.height):
            raise ValueError(
                f"item {item.item_hash[:12]} is stored as {stored.width} x {stored.height} px "
                f"but this review says {item.width} x {item.height}"
            )
        return stored

    def remove_case(
        self, case_id: int, removed_by: str | None, *, removed_at: datetime | None = None
    ) -> None:
        """Removes a case from its study's worklist (a soft delete: its reads are kept).
        ``removed_at``: only when restoring a study (a naive time is taken as UTC); else now.
        KeyError when there is no such case."""
        with self.writing() as session:
            case = session.get(Case, int(case_id))
            if case is None:
                raise KeyError(f"no case with id {case_id}")
            case.removed_at = _utc(removed_at) or datetime.now(UTC)
            case.removed_by = removed_by

    def cases(self, study_id: int, removed: bool = False) -> list[CaseRecord]:
        """A study's cases in worklist order (removed ones too with ``removed``)."""
        # Columns, not entities: a worklist of 1,000 cases is built on every page run, and
        # loading ORM objects for it costs several times more than the rows.
        query = (
            select(
                Case.id,
                Case.study_id,
                Case.position,
                Case.case_group,
                Case.added_at,
                Case.added_by,
                Case.removed_at,
                Case.removed_by,
                Item.hash,
                Case.filename,
                Item.width,
                Item.height,
                Item.kind,
                Item.mpp,
            )
            .join(Item, Item.hash == Case.item_hash)
            .where(Case.study_id == study_id)
            .order_by(Case.position)
        )
        if not removed:
            query = query.where(Case.removed_at.is_(None))
        with self._reading() as session:
            return [
                CaseRecord(
                    case_id=row.id,
                    study_id=row.study_id,
                    item=ItemRecord(
                        row.hash, row.filename, row.width, row.height, row.kind, row.mpp
                    ),
                    position=row.position,
                    group=row.case_group,
                    removed=row.removed_at is not None,
                    added_at=_utc(row.added_at),
                    added_by=row.added_by,
                    removed_at=_utc(row.removed_at),
                    removed_by=row.removed_by,
                )
                for row in session.execute(query)
            ]

    def case(self, case_id: int) -> CaseRecord:
        """One case; KeyError when there is none with that id."""
        with self._reading() as session:
            found = session.get(Case, int(case_id))
            if found is None:
                raise KeyError(f"no case with id {case_id}")
            return _case(found, session.get(Item, found.item_hash))

    def image_bytes(self, item_hash: str) -> bytes | None:
        """The kept bytes of an image, None when they were never kept (a first-release
        review); BlobError when they are corrupt."""
        with self._reading() as session:
            return self.blobs.get(session, item_hash)

    def read_status(self, study_id: int, reader: str) -> dict[int, dict[str, int]]:
        """Per case id of a study: the id of ``reader``'s latest read of each kind
        ('unaided', 'aided', 'open')."""
        query = (
            select(Review.case_id, Review.read_kind, func.max(Review.id))
            .where(
                Review.study_id == study_id, Review.reader == reader, Review.case_id.is_not(None)
            )
            .group_by(Review.case_id, Review.read_kind)
        )
        out: dict[int, dict[str, int]] = {}
        with self._reading() as session:
            for case_id, kind, review_id in session.execute(query).all():
                if case_id is not None:
                    out.setdefault(int(case_id), {})[kind] = int(review_id)
        return out

    # -----------------------------------------------------------------------------------------
    # What a reader has not saved yet, and where they were

    def save_draft(self, reader: str, case_id: int, content: dict[str, Any]) -> None:
        """Keeps a reader's unsaved work on a case (JSON-able), replacing the previous draft."""
        text_ = json.dumps(content)
        with self.writing() as session:
            draft = session.get(Draft, (reader, int(case_id)))
            if draft is None:
                session.add(
                    Draft(
                        reader=reader,
                        case_id=int(case_id),
                        content=text_,
                        updated_at=datetime.now(UTC),
                    )
                )
            else:
                draft.content, draft.updated_at = text_, datetime.now(UTC)

    def draft(self, reader: str, case_id: int) -> dict[str, Any] | None:
        """The reader's unsaved work on a case, None when there is none."""
        with self._reading() as session:
            found = session.get(Draft, (reader, int(case_id)))
            return None if found is None else dict(json.loads(found.content))

    def end_blinding(
        self, reader: str, case_ids: Iterable[int], at: datetime | None = None
    ) -> None:
        """Records that ``reader`` was shown others' reads of these cases, ``at`` (default now);
        a case's first record is kept."""
        when = at or datetime.now(UTC)
        rows = [{"reader": reader, "case_id": int(c), "at": when} for c in case_ids]
        if not rows:
            return
        with self.writing() as session:
            session.execute(insert(session, Unblinding).values(rows).on_conflict_do_nothing())

    def closed_images(self, reader: str) -> dict[str, datetime]:
        """The images whose blinding ended for ``reader``, in any study: item hash -> when
        it first did."""
        query = (
            select(Case.item_hash, func.min(Unblinding.at))
            .join(Case, Case.id == Unblinding.case_id)
            .where(Unblinding.reader == reader)
            .group_by(Case.item_hash)
        )
        with self._reading() as session:
            return {h: _utc(at) for h, at in session.execute(query).all()}

    def blinding_ended(self, study_id: int) -> dict[str, dict[int, datetime]]:
        """Whose blinding ended for which cases of a study: reader -> case id -> when."""
        query = (
            select(Unblinding.reader, Unblinding.case_id, Unblinding.at)
            .join(Case, Case.id == Unblinding.case_id)
            .where(Case.study_id == int(study_id))
            .order_by(Unblinding.at, Unblinding.case_id)
        )
        out: dict[str, dict[int, datetime]] = {}
        with self._reading() as session:
            for reader, case_id, at in session.execute(query).all():
                out.setdefault(reader, {})[int(case_id)] = _utc(at)
        return out

    def set_place(self, reader: str, study_id: int, case_id: int | None) -> None:
        """Remembers where a reader is: their case in a study (one place per study)."""
        now = datetime.now(UTC)
        with self.writing() as session:
            # An upsert: two tabs of one reader may both be the first to move in a study.
            session.execute(
                insert(session, Place)
                .values(reader=reader, study_id=study_id, case_id=case_id, updated_at=now)
                .on_conflict_do_update(
                    index_elements=[Place.reader, Place.study_id],
                    set_={"case_id": case_id, "updated_at": now},
                )
            )

    def place(self, reader: str) -> tuple[int, int | None] | None:
        """Where a reader last was: (study id, case id or None), None for a new reader."""
        with self._reading() as session:
            found = session.execute(
                select(Place.study_id, Place.case_id)
                .where(Place.reader == reader)
                .order_by(Place.updated_at.desc())
                .limit(1)
            ).first()
            return None if found is None else (found.study_id, found.case_id)

    def place_in(self, reader: str, study_id: int) -> int | None:
        """The case a reader was at in a study; None when they have not been in it."""
        with self._reading() as session:
            found = session.get(Place, (reader, int(study_id)))
            return None if found is None else found.case_id

    def last_reader(self) -> str | None:
        """The reader who moved most recently (the local, single-user start's default)."""
        with self._reading() as session:
            return session.execute(
                select(Place.reader).order_by(Place.updated_at.desc()).limit(1)
            ).scalar()

    def reader_names(self) -> list[str]:
        """Every reader name in use, sorted: accounts, and names that have read, drafted,
        moved or ended their blinding (imported references' names are not readers)."""
        with self._reading() as session:
            names: set[str] = set()
            columns = (Reader.name, Review.reader, Draft.reader, Place.reader, Unblinding.reader)
            for column in columns:
                names.update(session.execute(select(column).distinct()).scalars())
        return sorted(n for n in names if not n.startswith(REFERENCE_PREFIX))

    # -----------------------------------------------------------------------------------------
    # Accounts

    def add_reader(self, name: str, password_hash: str | None, role: str = "reader") -> None:
        """Creates an account; ValueError when the name is taken (in any case, compared with
        ``str.casefold`` as sign-in does: "Alice" and "alice", "Élodie" and "élodie" are one
        name) or the role unknown."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        check_text(name, "name", NAME_LENGTH)
        folded = name.casefold()
        with self.writing() as session:
            if session.get_bind().dialect.name == "postgresql":
                # The names are compared here, not by a key of the table: without the lock two
                # creations of "Élodie" and "élodie" at once would both find the name free.
                # SQLite already serialises writers at BEGIN IMMEDIATE.
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ACCOUNTS_LOCK})
            # Python's casefold, not SQL lower(): SQLite's lower() folds ASCII only ("Élodie"
            # and "élodie" would be two accounts), and sign-in matches names with casefold.
            # Accounts are few: comparing every name costs nothing.
            names = session.execute(select(Reader.name).order_by(Reader.name)).scalars()
            taken = next((n for n in names if n.casefold() == folded), None)
            if taken is not None:
                # One person, one account: "Alice" and "alice" would be two readers.
                raise ValueError(f"an account named {taken!r} exists already")
            session.add(
                Reader(
                    name=name, password_hash=password_hash, role=role, created_at=datetime.now(UTC)
                )
            )

    def update_reader(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> None:
        """Changes an account's password hash, role or disabled flag; ``name`` in any case, as
        at sign-in. KeyError when unknown."""
        with self.writing() as session:
            found = _account(session, name)
            if found is None:
                raise KeyError(f"no account named {name!r}")
            if password_hash is not None:
                found.password_hash = password_hash
            if role is not None:
                if role not in ROLES:
                    raise ValueError(f"role must be one of {ROLES}, got {role!r}")
                found.role = role
            if disabled is not None:
                found.disabled = disabled

    def reader(self, name: str) -> ReaderRecord | None:
        """An account (``name`` in any case, as at sign-in), None when there is none."""
        with self._reading() as session:
            found = _account(session, name)
            return None if found is None else _reader(found)

    def readers(self) -> list[ReaderRecord]:
        """Every account, by name."""
        with self._reading() as session:
            return [
                _reader(r) for r in session.execute(select(Reader).order_by(Reader.name)).scalars()
            ]


def _account(session: Session, name: str) -> Reader | None:
    """The account of ``name``, its case aside (names are unique by casefold)."""
    found = session.get(Reader, name)
    if found is not None:
        return found
    folded = name.casefold()
    for account in session.execute(select(Reader).order_by(Reader.name)).scalars():
        if account.name.casefold() == folded:
            return account
    return None


def _study(study: Study) -> StudyRecord:
    return StudyRecord(
        study_id=study.id,
        name=study.name,
        label_set=study.label_set,
        blinding=study.blinding,
        anonymise=bool(study.anonymise),
        model_set=study.model_set,
        created_at=_utc(study.created_at),
        created_by=study.created_by,
    )


def _case(case: Case, item: Item | None) -> CaseRecord:
    assert item is not None  # a case's item is a foreign key
    return CaseRecord(
        case_id=case.id,
        study_id=case.study_id,
        item=ItemRecord(item.hash, case.filename, item.width, item.height, item.kind, item.mpp),
        position=case.position,
        group=case.case_group,
        removed=case.removed_at is not None,
        added_at=_utc(case.added_at),
        added_by=case.added_by,
        removed_at=_utc(case.removed_at),
        removed_by=case.removed_by,
    )


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC: an aware time converted, a naive one taken as UTC (SQLite gives back
    naive times, and every time is stored in UTC: its DateTime type drops the offset); None
    stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def sqlite_path(url: str | URL) -> Path | None:
    """The file a SQLite database URL names, resolved; None for another database, an in-memory
    one, a URI filename, or a URL that does not parse (opening it says why)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _reader(reader: Reader) -> ReaderRecord:
    return ReaderRecord(reader.name, reader.password_hash, reader.role, bool(reader.disabled))


def _configure_sqlite(engine: Engine) -> None:
    """Per-connection SQLite settings, and BEGIN emitted by SQLAlchemy rather than by sqlite3
    (whose implicit transactions would make BEGIN IMMEDIATE impossible)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("lran_begin", "BEGIN"))
