"""The review database: items, readers' reviews (region + label), model predictions and scores.

SQLAlchemy 2 ORM; SQLite by default (one file under `data/`), any SQLAlchemy URL otherwise
(e.g. `postgresql+psycopg://user:pass@host/db`). Rows are only ever added: a region saved again
for the same item by the same reader becomes a new version, and nothing is updated or deleted.

The schema carries an explicit version (table `schema_version`). A database written by a newer
program, or one that is not an LRAN Review database, is refused at open instead of being guessed
at.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from annotations.scores import SCORE_NAMES
from annotations.shapes import mask_to_png, png_to_mask

SCHEMA_VERSION = 1
ITEM_KINDS = ("patch", "region")
UNSURE = "unsure"  # the reader label for "cannot decide", beside the class names
ENV_URL = "LRAN_REVIEW_DB"
DEFAULT_DB_PATH = Path(__file__).resolve().parent.parent / "data" / "reviews.sqlite"

# How often a save is retried when a concurrent writer took the same version number first.
_SAVE_ATTEMPTS = 5
_SQLITE_BUSY_TIMEOUT_S = 10
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StoreError(RuntimeError):
    """The review database could not be opened, read or written; the message says why."""


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Item(Base):
    """An image under review, keyed by the sha256 of its bytes (names are for display only)."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("kind IN ('patch', 'region')", name="ck_items_kind"),
        CheckConstraint("width > 0 AND height > 0", name="ck_items_size"),
    )

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(512))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    mpp: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Review(Base):
    """One reader's label and region for one item; a re-save is a new row with version + 1."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("item_hash", "reader", "version", name="uq_review_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_hash: Mapped[str] = mapped_column(ForeignKey("items.hash"), index=True)
    reader: Mapped[str] = mapped_column(String(200), index=True)
    model_set: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    geojson: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Prediction(Base):
    """What one model predicted for the item of a review, as shown to the reader."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("review_id", "model", name="uq_prediction_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    predicted_class: Mapped[str] = mapped_column(String(100))
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)


class Score(Base):
    """Agreement of one map of one model with the region of a review (annotations.scores)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("review_id", "model", "map", name="uq_score_map"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    map: Mapped[str] = mapped_column(String(100))
    pointing_game: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    energy_pointing_game: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou_50: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    dice_50: Mapped[float | None] = mapped_column(Float, nullable=True)
    dice_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    auroc: Mapped[float | None] = mapped_column(Float, nullable=True)


_TABLES = {t.name for t in Base.metadata.sorted_tables}


@dataclass
class ReviewRecord:
    """Everything one save stores.

    mask: bool (height, width) region of the image; geojson: the same region as GeoJSON
    (annotations.shapes.mask_to_geojson); predictions: model -> class name -> probability;
    scores: one dict per (model, map) with keys "model", "map" and every name in SCORE_NAMES
    (as returned by annotations.scores.agreement).
    """

    item_hash: str
    filename: str
    width: int
    height: int
    kind: str
    reader: str
    model_set: str
    label: str
    mask: np.ndarray
    geojson: dict
    predictions: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: list[dict] = field(default_factory=list)
    mpp: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class SavedReview:
    review_id: int
    version: int


def content_hash(data: bytes) -> str:
    """The item key of an image: the lower-case hex sha256 of its file bytes."""
    return hashlib.sha256(data).hexdigest()


def default_url() -> str:
    """The database URL used when none is given: env LRAN_REVIEW_DB, else the SQLite file
    data/reviews.sqlite of the repository (its folder is created)."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return url
    DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB_PATH}"


def _finite_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or None, got {value!r}") from None
    # NaN means "undefined" for a score; SQL has NULL for that.
    return None if math.isnan(number) else number


def _validate(rec: ReviewRecord) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Check a record before any database work; give the mask as bool and the score rows.

    Every problem is a ValueError (TypeError included), so that callers have one error to show.
    """
    if not isinstance(rec.item_hash, str) or not _SHA256.match(rec.item_hash):
        raise ValueError("item_hash must be the lower-case hex sha256 of the image bytes")
    for name in ("reader", "label"):
        value = getattr(rec, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string")
    if not isinstance(rec.model_set, str):
        raise ValueError("model_set must be a string")  # noqa: TRY004
    if rec.kind not in ITEM_KINDS:
        raise ValueError(f"kind must be one of {ITEM_KINDS}, got {rec.kind!r}")
    if not (isinstance(rec.width, int | np.integer) and isinstance(rec.height, int | np.integer)):
        raise ValueError("width and height must be integers")  # noqa: TRY004
    if rec.width <= 0 or rec.height <= 0:
        raise ValueError(f"width and height must be positive, got {rec.width} x {rec.height}")
    if rec.mpp is not None and not (rec.mpp > 0 and math.isfinite(rec.mpp)):
        raise ValueError(f"mpp must be a positive number or None, got {rec.mpp!r}")
    mask = np.asarray(rec.mask)
    if mask.shape != (rec.height, rec.width):
        raise ValueError(
            f"mask shape {mask.shape} does not match the item (height, width) = "
            f"({rec.height}, {rec.width})"
        )
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must be boolean (or 0/1)")
    if not isinstance(rec.geojson, dict) or "type" not in rec.geojson:
        raise ValueError("geojson must be a GeoJSON object (a dict with a 'type')")
    for model, probs in rec.predictions.items():
        if not isinstance(model, str) or not model:
            raise ValueError("prediction model names must be non-empty strings")
        if not isinstance(probs, dict) or not probs:
            raise ValueError(f"predictions[{model!r}] must map class names to probabilities")
        for cls, p in probs.items():
            if _finite_or_none(p, f"predictions[{model!r}][{cls!r}]") is None:
                raise ValueError(f"predictions[{model!r}][{cls!r}] must be a finite number")
    rows = []
    expected = {"model", "map", *SCORE_NAMES}
    for i, score in enumerate(rec.scores):
        if not isinstance(score, dict):
            raise ValueError(f"scores[{i}] must be a dict")  # noqa: TRY004
        missing, extra = expected - set(score), set(score) - expected
        if missing or extra:
            raise ValueError(
                f"scores[{i}] keys differ from model, map + SCORE_NAMES: "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        if not score["model"] or not score["map"]:
            raise ValueError(f"scores[{i}] needs a model and a map name")
        row: dict[str, Any] = {"model": str(score["model"]), "map": str(score["map"])}
        if any((r["model"], r["map"]) == (row["model"], row["map"]) for r in rows):
            raise ValueError(f"scores[{i}] repeats model {row['model']!r} map {row['map']!r}")
        pg = score["pointing_game"]
        row["pointing_game"] = None if pg is None else bool(pg)
        for name in SCORE_NAMES[1:]:
            row[name] = _finite_or_none(score[name], f"scores[{i}][{name!r}]")
        rows.append(row)
    return mask.astype(bool), rows


class Store:
    """Access to the review database.

    `Store(url)` opens (and on first use creates) the database at a SQLAlchemy URL; None means
    `default_url()`. SQLite gets WAL journaling (readers never block the writer), a 10 s busy
    timeout and enforced foreign keys. Raises StoreError when the database cannot be opened, is
    not an LRAN Review database, or has a schema version this program does not know.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine = create_engine(self.url)
        except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use database URL {self.url!r}: {exc}") from exc
        self._label = self.engine.url.render_as_string(hide_password=True)
        self._is_sqlite = self.engine.dialect.name == "sqlite"
        if self._is_sqlite:
            _configure_sqlite(self.engine)
        # SQLite: take the write lock at BEGIN, so that two writers queue on busy_timeout instead
        # of one failing when it upgrades its read snapshot to a write.
        self._write_engine = self.engine.execution_options(lran_begin="BEGIN IMMEDIATE")
        self._open()

    def __repr__(self) -> str:
        return f"Store({self._label!r})"

    def close(self) -> None:
        """Release the connection pool (the Store can still be used; it reconnects)."""
        self.engine.dispose()

    def _fail(self, action: str, exc: Exception) -> StoreError:
        detail = getattr(exc, "orig", None) or exc
        return StoreError(f"cannot {action} review database {self._label}: {detail}")

    def _open(self) -> None:
        attempt = 0
        while True:
            try:
                versions = self._read_or_create_schema()
                break
            except (SQLAlchemyError, OSError) as exc:
                # Another process creating the schema at the same moment shows up as a duplicate
                # (PostgreSQL); wait and read what it wrote.
                attempt += 1
                if attempt == _SAVE_ATTEMPTS or not _is_race(exc):
                    raise self._fail("open", exc) from exc
                time.sleep(0.05 * attempt)
        if versions is None:
            return
        if len(versions) != 1:
            raise StoreError(
                f"review database {self._label} has {len(versions)} schema_version rows; "
                "expected exactly one"
            )
        found = versions[0]
        if found != SCHEMA_VERSION:
            newer = isinstance(found, int) and found > SCHEMA_VERSION
            raise StoreError(
                f"review database {self._label} has schema version {found}, but this program "
                f"understands version {SCHEMA_VERSION}"
                + ("; upgrade LRAN Review to open it" if newer else "; it cannot be opened")
            )
        try:
            missing = _TABLES - set(inspect(self.engine).get_table_names())
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail("open", exc) from exc
        if missing:
            raise StoreError(f"review database {self._label} lacks tables {sorted(missing)}")

    def _read_or_create_schema(self) -> list[int] | None:
        """Give the schema_version values of an existing database, or create the schema in an
        empty one and give None."""
        with self._write_engine.begin() as conn:
            tables = set(inspect(conn).get_table_names())
            if not tables:
                Base.metadata.create_all(conn)
                conn.execute(
                    SchemaVersion.__table__.insert().values(
                        id=1, version=SCHEMA_VERSION, created_at=datetime.now(UTC)
                    )
                )
                return None
            if "schema_version" not in tables:
                raise StoreError(
                    f"{self._label} is not an LRAN Review database (it has tables "
                    f"{sorted(tables)[:5]} but no schema_version table); "
                    "point LRAN_REVIEW_DB at another database"
                )
            return list(conn.execute(select(SchemaVersion.version)).scalars())

    # -----------------------------------------------------------------------------------------
    # Writing

    def save_review(self, rec: ReviewRecord) -> SavedReview:
        """Store one review in one transaction: the item (if new), the review with the next
        version for (item, reader), its predictions and its scores. Gives SavedReview(review_id,
        version). Raises ValueError for invalid input (before touching the database) and
        StoreError when the database cannot be written; either way nothing is stored."""
        mask, score_rows = _validate(rec)
        png = mask_to_png(mask)
        geojson = json.dumps(rec.geojson)
        attempt = 0
        while True:
            try:
                with Session(self._write_engine) as session, session.begin():
                    return self._insert(session, rec, png, geojson, score_rows)
            except IntegrityError as exc:
                # A concurrent writer took this version number (or inserted the same item) first;
                # the transaction rolled back whole, so try again with a fresh maximum.
                attempt += 1
                if attempt == _SAVE_ATTEMPTS:
                    raise self._fail("write to", exc) from exc
                time.sleep(0.02 * attempt)
            except (SQLAlchemyError, OSError) as exc:
                raise self._fail("write to", exc) from exc

    def _insert(
        self,
        session: Session,
        rec: ReviewRecord,
        png: bytes,
        geojson: str,
        score_rows: list[dict[str, Any]],
    ) -> SavedReview:
        now = datetime.now(UTC)
        item = session.get(Item, rec.item_hash)
        if item is None:
            session.add(
                Item(
                    hash=rec.item_hash,
                    filename=rec.filename,
                    width=int(rec.width),
                    height=int(rec.height),
                    kind=rec.kind,
                    mpp=rec.mpp,
                    created_at=now,
                )
            )
        elif (item.width, item.height) != (rec.width, rec.height):
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
        session.add_all(Score(review_id=review.id, **row) for row in score_rows)
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
    ):
        query = select(
            Review.id.label("review_id"),
            Review.item_hash,
            Item.filename,
            Item.width,
            Item.height,
            Item.kind,
            Item.mpp,
            Review.reader,
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

    def _frame(self, query, columns: list[str]) -> pd.DataFrame:
        with self._reading() as session:
            rows = session.execute(query).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        if "created_at" in frame:
            # SQLite returns naive datetimes; every timestamp here was written in UTC.
            frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def reviews_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
    ) -> pd.DataFrame:
        """One row per review (optionally filtered; `latest_only` keeps each reader's last
        version per item), ordered by review_id, with columns review_id, item_hash, filename,
        width, height, kind, mpp, reader, model_set, label, version, created_at (UTC), note."""
        query = self._review_query(reader, model_set, item_hash, latest_only)
        return self._frame(query.order_by(Review.id), [c.name for c in query.selected_columns])

    def predictions_frame(
        self,
        reader: str | None = None,
        model_set: str | None = None,
        item_hash: str | None = None,
        latest_only: bool = False,
    ) -> pd.DataFrame:
        """One row per (review, model): the review columns of `reviews_frame` plus model,
        predicted_class, probabilities (dict class -> probability) and one column
        `p_<class>` per class name seen."""
        base = self._review_query(reader, model_set, item_hash, latest_only).subquery()
        query = (
            select(base, Prediction.model, Prediction.predicted_class, Prediction.probabilities)
            .join(Prediction, Prediction.review_id == base.c.review_id)
            .order_by(base.c.review_id, Prediction.model)
        )
        frame = self._frame(query, [c.name for c in query.selected_columns])
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
    ) -> pd.DataFrame:
        """One row per (review, model, map): the review columns of `reviews_frame` plus model,
        map and one column per name in SCORE_NAMES: pointing_game as pandas "boolean", the
        others float, undefined ones <NA> / NaN."""
        base = self._review_query(reader, model_set, item_hash, latest_only).subquery()
        score_cols = [getattr(Score, name) for name in SCORE_NAMES]
        query = (
            select(base, Score.model, Score.map, *score_cols)
            .join(Score, Score.review_id == base.c.review_id)
            .order_by(base.c.review_id, Score.model, Score.map)
        )
        frame = self._frame(query, [c.name for c in query.selected_columns])
        # Analysis-ready dtypes: undefined scores (NULL) become <NA> / NaN.
        frame["pointing_game"] = frame["pointing_game"].astype("boolean")
        for name in SCORE_NAMES[1:]:
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

    def get_geojson(self, review_id: int) -> dict:
        """The region of a review as the GeoJSON dict that was saved. KeyError if unknown."""
        return json.loads(self._region(review_id)[1])

    def item_hashes(self) -> list[str]:
        """Hashes of every item with at least one stored review, sorted."""
        with self._reading() as session:
            return list(session.execute(select(Item.hash).order_by(Item.hash)).scalars())


def _is_race(exc: Exception) -> bool:
    """Whether an error is another process creating the same schema object concurrently."""
    if isinstance(exc, IntegrityError):
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return "already exists" in text or "duplicate key" in text


def _configure_sqlite(engine: Engine) -> None:
    """Per-connection SQLite settings, and BEGIN emitted by SQLAlchemy rather than by sqlite3
    (whose implicit transactions would make BEGIN IMMEDIATE impossible)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("lran_begin", "BEGIN"))
