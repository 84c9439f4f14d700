"""Reader studies, accounts and stored images.

New tables: readers (accounts), studies, blobs (image bytes kept in the database), cases (the
items of a study, soft-deleted), drafts (unsaved reads), places (where a reader last was).
reviews gains how the image was read (patch or region: the item's kind no longer says, since an
image added as a region may be read as one patch), the read's study and case, its kind
(unaided / aided / open / reference), whether
it was blinded and what was visible, the reader's confidence, an explicit "no region", the
aided read's parent, the anonymised map letters, the best-matching map and the label set.

Existing reviews were made with every prediction and map on screen: they become 'open' reads
(references: 'reference') of a study "Reviews before studies" (open, IDC labels), which gets a
case for each of their items. Every database also gets the blinded "Default study" that a fresh
install starts in.

Revision ID: 0003
Revises: 0002
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

EARLIER = "Reviews before studies"
DEFAULT = "Default study"
SHOWN_BEFORE_STUDIES = ["image", "predictions", "maps", "model names"]


def upgrade() -> None:
    op.create_table(
        "readers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('reader', 'admin')", name="ck_readers_role"),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("label_set", sa.String(100), nullable=False),
        sa.Column("blinding", sa.String(16), nullable=False),
        sa.Column("anonymise", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("model_set", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.CheckConstraint("blinding IN ('blinded', 'open')", name="ck_studies_blinding"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "blobs",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("item_hash", sa.String(64), sa.ForeignKey("items.hash"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_group", sa.String(512), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(200), nullable=True),
        sa.UniqueConstraint("study_id", "item_hash", name="uq_case_item"),
    )
    op.create_index("ix_cases_study_id", "cases", ["study_id"])
    op.create_table(
        "drafts",
        sa.Column("reader", sa.String(200), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "places",
        sa.Column("reader", sa.String(200), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Plain ADD COLUMN (no table rebuild, which would drop a table others reference). SQLite
    # takes a column's REFERENCES in ADD COLUMN, but not through Alembic's constraint ops.
    references = {"study_id": "studies", "case_id": "cases", "parent_id": "reviews"}
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, table in references.items():
        if sqlite:
            op.execute(f"ALTER TABLE reviews ADD COLUMN {name} INTEGER REFERENCES {table} (id)")
        else:
            op.add_column(
                "reviews",
                sa.Column(name, sa.Integer(), sa.ForeignKey(f"{table}.id"), nullable=True),
            )
    for column in (
        sa.Column("kind", sa.String(16), nullable=False, server_default="patch"),
        sa.Column("read_kind", sa.String(16), nullable=False, server_default="open"),
        sa.Column("blinded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("visible", sa.JSON(), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("no_region", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("anonymised", sa.JSON(), nullable=True),
        sa.Column("best_map", sa.String(100), nullable=True),
        sa.Column("label_set", sa.String(100), nullable=True),
    ):
        op.add_column("reviews", column)

    conn = op.get_bind()
    now = datetime.now(UTC)
    studies = sa.table(
        "studies",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("label_set", sa.String),
        sa.column("blinding", sa.String),
        sa.column("anonymise", sa.Boolean),
        sa.column("model_set", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("created_by", sa.String),
    )
    reviews = sa.table(
        "reviews",
        sa.column("id", sa.Integer),
        sa.column("item_hash", sa.String),
        sa.column("kind", sa.String),
        sa.column("model_set", sa.String),
        sa.column("is_reference", sa.Boolean),
        sa.column("study_id", sa.Integer),
        sa.column("case_id", sa.Integer),
        sa.column("read_kind", sa.String),
        sa.column("visible", sa.JSON),
        sa.column("label_set", sa.String),
    )
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("study_id", sa.Integer),
        sa.column("item_hash", sa.String),
        sa.column("position", sa.Integer),
        sa.column("case_group", sa.String),
        sa.column("added_at", sa.DateTime(timezone=True)),
    )
    items = sa.table(
        "items",
        sa.column("hash", sa.String),
        sa.column("filename", sa.String),
        sa.column("kind", sa.String),
    )
    for item_hash, kind in conn.execute(sa.select(items.c.hash, items.c.kind)).all():
        conn.execute(reviews.update().where(reviews.c.item_hash == item_hash).values(kind=kind))
    existing = conn.execute(
        sa.select(reviews.c.id, reviews.c.item_hash, reviews.c.model_set).order_by(reviews.c.id)
    ).all()
    if existing:
        model_set = existing[0].model_set or "idc"
        conn.execute(
            studies.insert().values(
                name=EARLIER,
                label_set="IDC",
                blinding="open",
                anonymise=False,
                model_set=model_set,
                created_at=now,
                created_by=None,
            )
        )
        study_id = conn.execute(
            sa.select(studies.c.id).where(studies.c.name == EARLIER)
        ).scalar_one()
        names = dict(conn.execute(sa.select(items.c.hash, items.c.filename)).all())
        order: list[str] = []
        for row in existing:
            if row.item_hash not in order:
                order.append(row.item_hash)
        for position, item_hash in enumerate(order):
            conn.execute(
                cases.insert().values(
                    study_id=study_id,
                    item_hash=item_hash,
                    position=position,
                    case_group=_group(names.get(item_hash, "")),
                    added_at=now,
                )
            )
        case_ids = dict(
            conn.execute(
                sa.select(cases.c.item_hash, cases.c.id).where(cases.c.study_id == study_id)
            ).all()
        )
        for row in existing:
            conn.execute(
                reviews.update()
                .where(reviews.c.id == row.id)
                .values(
                    study_id=study_id,
                    case_id=case_ids[row.item_hash],
                    label_set="IDC",
                    read_kind=sa.case((reviews.c.is_reference, "reference"), else_="open"),
                    visible=SHOWN_BEFORE_STUDIES,
                )
            )
    conn.execute(
        studies.insert().values(
            name=DEFAULT,
            label_set="IDC",
            blinding="blinded",
            anonymise=False,
            model_set="idc",
            created_at=now,
            created_by=None,
        )
    )


def _group(filename: str) -> str:
    """The case group the first release's file names give: an IDC patient, else the name."""
    stem = filename.rsplit("/", 1)[-1]
    head = stem.split("_idx5_", 1)
    return f"patient {head[0]}" if len(head) == 2 and head[0].isdigit() else stem


def downgrade() -> None:
    for name in (
        "label_set",
        "best_map",
        "anonymised",
        "parent_id",
        "no_region",
        "confidence",
        "visible",
        "blinded",
        "read_kind",
        "case_id",
        "study_id",
    ):
        op.drop_column("reviews", name)
    for table in ("places", "drafts", "cases", "blobs", "studies", "readers"):
        op.drop_table(table)
