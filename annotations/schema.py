"""The review database's tables (SQLAlchemy 2 ORM), as of the newest migration.

Rows are only ever added: a review saved again for the same item by the same reader is a new
row with the next version. ``annotations/migrations`` holds every schema change since the first
release; :class:`annotations.store.Store` applies them when it opens a database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ITEM_KINDS = ("patch", "region")
# What a stored read is: a blinded first read with no model output visible, the read after the
# maps were revealed, a read in an open (unblinded) study, or an imported reference annotation.
READ_KINDS = ("unaided", "aided", "open", "reference")
BLINDING = ("blinded", "open")
ROLES = ("reader", "admin")
# Column widths, checked before saving so that SQLite (which does not enforce them) and
# PostgreSQL (which does) accept and refuse the same records.
NAME_LENGTH = 200
FILENAME_LENGTH = 512
LABEL_LENGTH = 100
NOTE_LENGTH = 20_000


class Base(DeclarativeBase):
    pass


class Item(Base):
    """An image under review, keyed by the sha256 of its bytes (names are for display only).

    ``mpp`` is the image's own microns per pixel when known (resolution tags, or the reader's
    entry at its first review)."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("kind IN ('patch', 'region')", name="ck_items_kind"),
        CheckConstraint("width > 0 AND height > 0", name="ck_items_size"),
    )

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(FILENAME_LENGTH))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    mpp: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Reader(Base):
    """An account: a reader (sees their own reads) or an admin (sees all, manages studies).

    ``name`` is normalised (NFKC, no invisible characters); ``password_hash`` is an argon2 hash
    (None for accounts that sign in through a trusted proxy only).
    """

    __tablename__ = "readers"
    __table_args__ = (CheckConstraint("role IN ('reader', 'admin')", name="ck_readers_role"),)

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Study(Base):
    """A reader study: cases read by readers with one label set and one blinding mode.

    ``blinding`` 'blinded' hides every model output (and the model set's name) until a reader
    has saved an unaided read of a case; ``anonymise`` shows the revealed maps under shuffled
    letters (stored per read) instead of model names.
    """

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint("blinding IN ('blinded', 'open')", name="ck_studies_blinding"),
        UniqueConstraint("name", name="uq_studies_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    label_set: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    blinding: Mapped[str] = mapped_column(String(16))
    anonymise: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    model_set: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)


class Blob(Base):
    """An image's file bytes, when the store keeps them in the database (see
    annotations.blobs)."""

    __tablename__ = "blobs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Case(Base):
    """An item in a study, in worklist order. Removing a case is a soft delete (``removed_at``):
    its reads are kept."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("study_id", "item_hash", name="uq_case_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    item_hash: Mapped[str] = mapped_column(ForeignKey("items.hash"))
    position: Mapped[int] = mapped_column(Integer)
    case_group: Mapped[str] = mapped_column(String(FILENAME_LENGTH))
    # The name the image was added under in this study: the item keeps the first name it was
    # ever given, which may be another study's (a label-carrying name renamed for this one).
    # Every case has one (migration 0005 backfills, add_case sets it); the column is nullable
    # only because SQLite cannot make it NOT NULL without rebuilding a table others reference.
    filename: Mapped[str] = mapped_column(String(FILENAME_LENGTH), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    removed_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)


class Draft(Base):
    """What a reader has entered for a case but not saved yet (drawing, label, confidence,
    note), so that a reload or a new tab loses nothing."""

    __tablename__ = "drafts"

    reader: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Unblinding(Base):
    """A reader who was shown others' reads of a case before their own unaided read of it (an
    admin's choice on Compare or History, ``at``): their blinding for the case's image has
    ended, so an unaided read of that image by them, in any study, would not be blinded and is
    not taken."""

    __tablename__ = "unblindings"

    reader: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Place(Base):
    """Where a reader last was in a study: its case, to return to after a reload or another
    study; the latest row is the study they were in last."""

    __tablename__ = "places"

    reader: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Review(Base):
    """One reader's read of one item: label and region; a re-save is a new row with version + 1.

    ``mpp`` is the microns per pixel the maps were made and scored at, ``overlap`` how much the
    classified windows of a region overlap (None for a patch). ``is_reference`` marks an
    imported reference annotation (reader ``reference:<file>``), stored by ``imported_by``.
    ``kind``: how the image was read ('patch': classified whole; 'region': mapped window by
    window). Reader studies: ``study_id`` and ``case_id``; ``read_kind`` (READ_KINDS);
    ``blinded`` and ``visible`` (what the reader could see: a list of 'image', 'file name',
    'predictions', 'maps', 'model names'; reads saved before 'file name' was listed do not
    say it); ``confidence`` 1-5; ``no_region`` (the reader said so explicitly; scores are then
    None); ``parent_id`` (an aided read's unaided read); ``anonymised`` (the letters
    the maps were shown under: letter -> model); ``best_map`` (the letter or model the reader
    rated as matching their region best); ``label_set``.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("item_hash", "reader", "version", name="uq_review_version"),
        CheckConstraint(
            "read_kind IN ('unaided', 'aided', 'open', 'reference')", name="ck_reviews_read_kind"
        ),
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 1 AND confidence <= 5)",
            name="ck_reviews_confidence",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_hash: Mapped[str] = mapped_column(ForeignKey("items.hash"), index=True)
    reader: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    model_set: Mapped[str] = mapped_column(String(NAME_LENGTH))
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    geojson: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    mpp: Mapped[float | None] = mapped_column(Float, nullable=True)
    overlap: Mapped[float | None] = mapped_column(Float, nullable=True)
    is_reference: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    imported_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="patch", default="patch")
    read_kind: Mapped[str] = mapped_column(String(16), server_default="open", default="open")
    blinded: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    visible: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    confidence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    no_region: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), nullable=True)
    anonymised: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    best_map: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    label_set: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)


class Prediction(Base):
    """What one model predicted for the item of a review, as shown to the reader."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("review_id", "model", name="uq_prediction_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    predicted_class: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)


class Score(Base):
    """Agreement of one map of one model with the region of a review (annotations.scores).

    ``cam_class`` is the class a CAM (or a probability map) was made for, None for maps that
    belong to no class (attention, gates); ``tolerance_px`` the pointing game's tolerance in
    image pixels and ``tolerance_um`` in micrometres (None where the image's scale is unknown).
    """

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("review_id", "model", "map", name="uq_score_map"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    map: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    cam_class: Mapped[str | None] = mapped_column(String(LABEL_LENGTH), nullable=True)
    tolerance_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    tolerance_um: Mapped[float | None] = mapped_column(Float, nullable=True)
    pointing_game: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    energy_pointing_game: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou_50: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    dice_50: Mapped[float | None] = mapped_column(Float, nullable=True)
    dice_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    auroc: Mapped[float | None] = mapped_column(Float, nullable=True)


TABLES = frozenset(t.name for t in Base.metadata.sorted_tables)


def insert(session: Session, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` in the SQL of the session's database (SQLite or PostgreSQL),
    which both take ON CONFLICT DO NOTHING / DO UPDATE: an insert that races another."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
