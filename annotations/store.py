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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from annotations.masks import mask_to_png, png_to_mask
from annotations.records import ReviewRecord, SavedReview, validate
from annotations.schema import TABLES, Item, Prediction, Review, Score
from annotations.scores import SCORE_NAMES

ENV_URL = "LRAN_REVIEW_DB"
DEFAULT_DB_PATH = Path(__file__).resolve().parent.parent / "data" / "reviews.sqlite"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_RELEASE_REVISION = "0001"
_SQLITE_BUSY_TIMEOUT_S = 10
# Any constant: the key of the PostgreSQL advisory lock that serialises schema migrations.
_MIGRATION_LOCK = 7_312_024


class StoreError(RuntimeError):
    """The review database could not be opened, read or written; the message says why."""


def default_url() -> str:
    """The database URL used when none is given: env LRAN_REVIEW_DB, else the SQLite file
    data/reviews.sqlite of the repository (its folder is created)."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return url
    DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB_PATH}"


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

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine = create_engine(self.url)
        except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use database URL {self.url!r}: {exc}") from exc
        self._label = self.engine.url.render_as_string(hide_password=True)
        self._is_sqlite = self.engine.dialect.name == "sqlite"
        self._file = _sqlite_file(self.engine) if self._is_sqlite else None
        if self._is_sqlite:
            _configure_sqlite(self.engine)
        # SQLite: take the write lock at BEGIN, so that two writers queue on busy_timeout instead
        # of one failing when it upgrades its read snapshot to a write.
        self._write_engine = self.engine.execution_options(lran_begin="BEGIN IMMEDIATE")
        self._migrate()
        self._identity = self._file_identity()

    def __repr__(self) -> str:
        return f"Store({self._label!r})"

    def close(self) -> None:
        """Release the connection pool (the Store can still be used; it reconnects)."""
        self.engine.dispose()

    def _fail(self, action: str, exc: Exception) -> StoreError:
        detail = getattr(exc, "orig", None) or exc
        return StoreError(f"cannot {action} review database {self._label}: {detail}")

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
            raise StoreError(f"review database {self._label} lacks tables {sorted(missing)}")

    def _current_revision(self, conn: Connection, config: Config) -> str | None:
        """The database's revision (None when empty), stamping a first-release database;
        refuses foreign databases and ones from a newer release."""
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables:
            if not tables:
                return None
            if "schema_version" not in tables:
                raise StoreError(
                    f"{self._label} is not an LRAN Review database (it has tables "
                    f"{sorted(tables)[:5]} but no schema version); point LRAN_REVIEW_DB at "
                    "another database"
                )
            versions = list(conn.execute(text("SELECT version FROM schema_version")).scalars())
            if versions != [1]:
                raise StoreError(
                    f"review database {self._label} has schema version {versions}, which this "
                    "program does not know; upgrade LRAN Review to open it"
                )
            command.stamp(config, FIRST_RELEASE_REVISION)
        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            raise StoreError(
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
            raise StoreError(
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
        self._check_file()
        try:
            with Session(self._write_engine) as session, session.begin():
                saved = self._insert(session, rec, png, geojson)
        except ValueError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail("write to", exc) from exc
        self._check_file()
        return saved

    def _insert(self, session: Session, rec: ReviewRecord, png: bytes, geojson: str) -> SavedReview:
        now = datetime.now(UTC)
        values = {
            "hash": rec.item_hash,
            "filename": rec.filename,
            "width": int(rec.width),
            "height": int(rec.height),
            "kind": rec.kind,
            "mpp": rec.mpp,
            "created_at": now,
        }
        dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite  # type: ignore[union-attr]
        session.execute(dialect.insert(Item).values(**values).on_conflict_do_nothing())
        # The item row is the lock that orders concurrent saves of one item (PostgreSQL; SQLite
        # already serialises writers at BEGIN IMMEDIATE): each sees the previous version.
        item = session.execute(
            select(Item).where(Item.hash == rec.item_hash).with_for_update()
        ).scalar_one()
        if (item.width, item.height) != (rec.width, rec.height):
            raise ValueError(
                f"item {rec.item_hash[:12]} is stored as {item.width} x {item.height} px but this "
                f"review says {rec.width} x {rec.height}"
            )
        latest = session.execute(
            select(func.max(Review.version)).where(
                Review.item_hash == rec.item_hash, Review.reader == rec.reader
            )
        ).scalar_one()
        version = (latest or 0) + 1
        review = Review(
            item_hash=rec.item_hash,
            reader=rec.reader,
            model_set=rec.model_set,
            label=rec.label,
            version=version,
            created_at=now,
            mask_png=png,
            geojson=geojson,
            note=rec.note,
            mpp=rec.mpp,
            overlap=rec.overlap,
            is_reference=rec.is_reference,
            imported_by=rec.imported_by,
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
    ) -> Select[Any]:
        query: Select[Any] = select(  # type: ignore[assignment]
            Review.id.label("review_id"),
            Review.item_hash,
            Item.filename,
            Item.width,
            Item.height,
            Item.kind,
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
        ).join(Item, Item.hash == Review.item_hash)
        if reader is not None:
            query = query.where(Review.reader == reader)
        if model_set is not None:
            query = query.where(Review.model_set == model_set)
        if item_hash is not None:
            query = query.where(Review.item_hash == item_hash)
        if not references:
            query = query.where(Review.is_reference.is_(False))
        if latest_only:
            latest = (
                select(
                    Review.item_hash.label("h"),
                    Review.reader.label("r"),
                    func.max(Review.version).label("v"),
                )
                .group_by(Review.item_hash, Review.reader)
                .subquery()
            )
            query = query.join(
                latest,
                (latest.c.h == Review.item_hash)
                & (latest.c.r == Review.reader)
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
        if "is_reference" in frame:
            frame["is_reference"] = frame["is_reference"].astype(bool)
        return frame

    def reviews_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
        references: bool = True,
    ) -> pd.DataFrame:
        """One row per review, ordered by review_id, with columns review_id, item_hash,
        filename, width, height, kind, mpp, overlap, reader, is_reference, imported_by,
        model_set, label, version, created_at (UTC), note.

        Filters: ``reader``, ``model_set``, ``item_hash``; ``latest_only`` keeps each reader's
        last version per item; ``references=False`` leaves imported references out.
        """
        query = self._review_query(reader, model_set, item_hash, latest_only, references)
        return self._frame(query.order_by(Review.id))

    def predictions_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
        references: bool = True,
    ) -> pd.DataFrame:
        """One row per (review, model): the columns of :meth:`reviews_frame` plus model,
        predicted_class, probabilities (dict class -> probability) and one column ``p_<class>``
        per class name seen."""
        base = self._review_query(reader, model_set, item_hash, latest_only, references).subquery()
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
    ) -> pd.DataFrame:
        """One row per (review, model, map): the columns of :meth:`reviews_frame` plus model,
        map, cam_class, tolerance_px, tolerance_um and one column per name in SCORE_NAMES:
        pointing_game as pandas "boolean", the others float, undefined ones <NA> / NaN."""
        base = self._review_query(reader, model_set, item_hash, latest_only, references).subquery()
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
        with self._reading() as session:
            row = session.execute(
                select(Review.mask_png, Review.geojson).where(Review.id == int(review_id))
            ).one_or_none()
        if row is None:
            raise KeyError(f"no review with id {review_id}")
        return row[0], row[1]

    def get_mask(self, review_id: int) -> np.ndarray:
        """The region of a review as a bool (height, width) mask. KeyError if there is no such
        review."""
        return png_to_mask(self._region(review_id)[0])

    def get_geojson(self, review_id: int) -> dict[str, Any]:
        """The region of a review as the GeoJSON dict that was saved. KeyError if unknown."""
        geojson: dict[str, Any] = json.loads(self._region(review_id)[1])
        return geojson

    def item_hashes(self) -> list[str]:
        """Hashes of every item with at least one stored review, sorted."""
        with self._reading() as session:
            return list(session.execute(select(Item.hash).order_by(Item.hash)).scalars())


def _sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine, None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


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
