"""The schema of the first release (schema_version 1), as its create_all() made it.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mpp", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('patch', 'region')", name="ck_items_kind"),
        sa.CheckConstraint("width > 0 AND height > 0", name="ck_items_size"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("item_hash", sa.String(64), sa.ForeignKey("items.hash"), nullable=False),
        sa.Column("reader", sa.String(200), nullable=False),
        sa.Column("model_set", sa.String(200), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mask_png", sa.LargeBinary(), nullable=False),
        sa.Column("geojson", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("item_hash", "reader", "version", name="uq_review_version"),
    )
    op.create_index("ix_reviews_reader", "reviews", ["reader"])
    op.create_index("ix_reviews_item_hash", "reviews", ["item_hash"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("predicted_class", sa.String(100), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.UniqueConstraint("review_id", "model", name="uq_prediction_model"),
    )
    op.create_index("ix_predictions_review_id", "predictions", ["review_id"])
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("map", sa.String(100), nullable=False),
        sa.Column("pointing_game", sa.Boolean(), nullable=True),
        sa.Column("energy_pointing_game", sa.Float(), nullable=True),
        sa.Column("iou_50", sa.Float(), nullable=True),
        sa.Column("iou_mean", sa.Float(), nullable=True),
        sa.Column("dice_50", sa.Float(), nullable=True),
        sa.Column("dice_mean", sa.Float(), nullable=True),
        sa.Column("auroc", sa.Float(), nullable=True),
        sa.UniqueConstraint("review_id", "model", "map", name="uq_score_map"),
    )
    op.create_index("ix_scores_review_id", "scores", ["review_id"])
    op.execute(
        "INSERT INTO schema_version (id, version, created_at) VALUES (1, 1, CURRENT_TIMESTAMP)"
    )


def downgrade() -> None:
    for table in ("scores", "predictions", "reviews", "items", "schema_version"):
        op.drop_table(table)
