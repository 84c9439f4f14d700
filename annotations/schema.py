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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ITEM_KINDS = ("patch", "region")
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


class Review(Base):
    """One reader's label and region for one item; a re-save is a new row with version + 1.

    ``mpp`` is the microns per pixel the maps were made and scored at, ``overlap`` the tile
    overlap of a region's maps (None for a patch). ``is_reference`` marks an imported reference
    annotation (reader ``reference:<file>``), stored by ``imported_by``.
    """

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("item_hash", "reader", "version", name="uq_review_version"),)

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
