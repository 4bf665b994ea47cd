"""delivery lessons on demand (专递课堂 by video): a lesson that plays a library item

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_playback",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("assigned_by", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("played_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["library_item.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("lesson_id"),
    )
    op.create_index("ix_lesson_playback_item_id", "lesson_playback", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_lesson_playback_item_id", table_name="lesson_playback")
    op.drop_table("lesson_playback")
