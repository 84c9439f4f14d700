"""Where a reader's blinding ended: the cases of a blinded study whose others' reads an admin
chose to see before reading them.

The choice was a toggle kept in the browser only, so an unaided read made after it was stored
as blinded. Nothing is backfilled: earlier choices were not recorded.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unblindings",
        sa.Column("reader", sa.String(200), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reader", "case_id"),
    )


def downgrade() -> None:
    op.drop_table("unblindings")
