"""Columns for what the first release kept in notes and name prefixes.

reviews: mpp (the microns per pixel the maps were made at), overlap (a region's tile overlap),
is_reference and imported_by (an imported reference annotation). scores: cam_class (the class a
CAM or probability map was made for), tolerance_px / tolerance_um (the pointing game's
tolerance). The first release's rows are filled from what it wrote: the region note ("region maps
at 4.67 um/px, class IDC-positive, tiles overlapping 50% (...)"), the reference note ("... imported
by dr-a; ..."), the reader prefix "reference:", the item's mpp for patches, and its fixed 15 px
pointing-game tolerance. Alembic's own version table replaces schema_version.

Revision ID: 0002
Revises: 0001
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FIRST_RELEASE_TOLERANCE_PX = 15.0
_MPP = re.compile(r"region maps at ([0-9.eE+-]+) um/px")
_CLASS = re.compile(r"region maps at [^,]+, class (.+?), tiles overlapping")
_OVERLAP = re.compile(r"tiles overlapping ([0-9.]+)%")
_IMPORTER = re.compile(r"imported by (.+?); region = ")


def upgrade() -> None:
    # Plain ADD COLUMN, which SQLite and PostgreSQL both do in place (a batch table rebuild
    # would drop tables that others reference).
    op.add_column("reviews", sa.Column("mpp", sa.Float(), nullable=True))
    op.add_column("reviews", sa.Column("overlap", sa.Float(), nullable=True))
    op.add_column(
        "reviews",
        sa.Column("is_reference", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("reviews", sa.Column("imported_by", sa.String(200), nullable=True))
    op.add_column("scores", sa.Column("cam_class", sa.String(100), nullable=True))
    op.add_column("scores", sa.Column("tolerance_px", sa.Float(), nullable=True))
    op.add_column("scores", sa.Column("tolerance_um", sa.Float(), nullable=True))

    conn = op.get_bind()
    reviews = sa.table(
        "reviews",
        sa.column("id", sa.Integer),
        sa.column("item_hash", sa.String),
        sa.column("reader", sa.String),
        sa.column("note", sa.Text),
        sa.column("mpp", sa.Float),
        sa.column("overlap", sa.Float),
        sa.column("is_reference", sa.Boolean),
        sa.column("imported_by", sa.String),
    )
    items = sa.table("items", sa.column("hash", sa.String), sa.column("mpp", sa.Float))
    scores = sa.table(
        "scores",
        sa.column("review_id", sa.Integer),
        sa.column("map", sa.String),
        sa.column("cam_class", sa.String),
        sa.column("tolerance_px", sa.Float),
    )
    rows = conn.execute(
        sa.select(reviews.c.id, reviews.c.reader, reviews.c.note, items.c.mpp).join(
            items, items.c.hash == reviews.c.item_hash
        )
    ).all()
    for review_id, reader, note, item_mpp in rows:
        note = note or ""
        mpp = _MPP.search(note)
        overlap = _OVERLAP.search(note)
        importer = _IMPORTER.search(note)
        conn.execute(
            reviews.update()
            .where(reviews.c.id == review_id)
            .values(
                mpp=float(mpp.group(1)) if mpp else item_mpp,
                overlap=float(overlap.group(1)) / 100 if overlap else None,
                is_reference=reader.startswith("reference:"),
                imported_by=importer.group(1) if importer else None,
            )
        )
        cam_class = _CLASS.search(note)
        if cam_class:
            conn.execute(
                scores.update()
                .where(scores.c.review_id == review_id, scores.c.map.in_(("cam", "probability")))
                .values(cam_class=cam_class.group(1))
            )
    conn.execute(scores.update().values(tolerance_px=FIRST_RELEASE_TOLERANCE_PX))
    op.drop_table("schema_version")


def downgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO schema_version (id, version, created_at) VALUES (1, 1, CURRENT_TIMESTAMP)"
    )
    for name in ("tolerance_um", "tolerance_px", "cam_class"):
        op.drop_column("scores", name)
    for name in ("imported_by", "is_reference", "overlap", "mpp"):
        op.drop_column("reviews", name)
