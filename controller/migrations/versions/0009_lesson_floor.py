"""the floor of each lesson (课堂互动): the receiving classroom called on, the muted ones
and a sequence number raised on every change

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_floor",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaking", sa.String(length=64), nullable=True),
        sa.Column("muted", sa.JSON(), nullable=False),
        sa.Column("duck_db", sa.Float(), nullable=False),
        sa.Column("changed_by", sa.String(length=120), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lesson_id"),
    )


def downgrade() -> None:
    op.drop_table("lesson_floor")
