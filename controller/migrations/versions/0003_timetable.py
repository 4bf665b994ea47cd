"""term timetable: schools, teachers, terms and their days, bell periods, pairings,
lesson series; subject/teacher/series/pairing/term on lessons

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LESSON_COLUMNS = (
    ("subject", sa.String(length=64), False, ""),
    ("teacher_id", sa.String(length=64), True, None),
    ("series_id", sa.String(length=32), True, None),
    ("pairing_id", sa.String(length=64), True, None),
    ("term_id", sa.String(length=64), True, None),
)
INDEXED = ("subject", "teacher_id", "series_id", "pairing_id", "term_id")


def upgrade() -> None:
    with op.batch_alter_table("lesson") as batch:
        for name, kind, nullable, default in LESSON_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=nullable, server_default=default))
        batch.add_column(sa.Column("one_way", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("lesson") as batch:
        batch.alter_column("subject", server_default=None)
        batch.alter_column("one_way", server_default=None)
        for name in INDEXED:
            batch.create_index(f"ix_lesson_{name}", [name])
    op.create_table(
        "school",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("uplink_kbps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "teacher",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "term",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "term_day",
        sa.Column("term_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("runs_as", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["term_id"], ["term.id"]),
        sa.PrimaryKeyConstraint("term_id", "day"),
    )
    op.create_table(
        "bell_period",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("start", sa.String(length=5), nullable=False),
        sa.Column("end", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "period"),
    )
    op.create_table(
        "pairing",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("supporting_school_id", sa.String(length=64), nullable=False),
        sa.Column("supported_school_ids", sa.JSON(), nullable=False),
        sa.Column("forms", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "lesson_series",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("term_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("teacher_id", sa.String(length=64), nullable=True),
        sa.Column("pairing_id", sa.String(length=64), nullable=True),
        sa.Column("lead_classroom_id", sa.String(length=64), nullable=False),
        sa.Column("receivers", sa.JSON(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("exceptions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["term_id"], ["term.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in (
        "lesson_series",
        "pairing",
        "bell_period",
        "term_day",
        "term",
        "teacher",
        "school",
    ):
        op.drop_table(table)
    with op.batch_alter_table("lesson") as batch:
        for name in INDEXED:
            batch.drop_index(f"ix_lesson_{name}")
        for name, *_ in LESSON_COLUMNS:
            batch.drop_column(name)
        batch.drop_column("one_way")
