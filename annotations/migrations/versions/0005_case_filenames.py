"""A case's own file name: the name the image was added under in its study.

The name lived on the item alone, so the same bytes added as "case-007.png" to a second study
showed (and exported) the first study's name, such as a label-carrying IDC name. Each case is
backfilled with its item's name, which is what it showed until now.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("filename", sa.String(512), nullable=True))
    op.execute(
        "UPDATE cases SET filename = (SELECT items.filename FROM items "
        "WHERE items.hash = cases.item_hash)"
    )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("filename")
