"""A reader's place per study: where they were in each study, not only in the last one.

places was keyed by reader alone, so a glance at another study lost the reader's case in the
first. It is now keyed by (reader, study); each reader's one row is kept as their place in its
study. Nothing references places: the table is rebuilt, the same way on SQLite and PostgreSQL.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _places(name: str, key: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("reader", sa.String(200), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def upgrade() -> None:
    _places("places_new", ["reader", "study_id"])
    op.execute(
        "INSERT INTO places_new (reader, study_id, case_id, updated_at) "
        "SELECT reader, study_id, case_id, updated_at FROM places"
    )
    op.drop_table("places")
    op.rename_table("places_new", "places")


def downgrade() -> None:
    # One place per reader again: the study they were in last.
    _places("places_old", ["reader"])
    op.execute(
        "INSERT INTO places_old (reader, study_id, case_id, updated_at) "
        "SELECT p.reader, p.study_id, p.case_id, p.updated_at FROM places p "
        "WHERE p.updated_at = (SELECT max(q.updated_at) FROM places q WHERE q.reader = p.reader)"
    )
    op.drop_table("places")
    op.rename_table("places_old", "places")
