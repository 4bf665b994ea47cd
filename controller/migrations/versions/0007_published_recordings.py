"""recordings published to the resource library, and indexes for the recording search
(a classroom's school, a lesson's kind, a recording's classroom)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_recording",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=64), nullable=False),
        sa.Column("track", sa.String(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classroom_id"], ["classroom.id"]),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"]),
        sa.PrimaryKeyConstraint("lesson_id", "classroom_id", "track"),
    )
    op.create_index("ix_classroom_school", "classroom", ["school"])
    op.create_index("ix_lesson_kind", "lesson", ["kind"])
    op.create_index("ix_recording_classroom_id", "recording", ["classroom_id"])


def downgrade() -> None:
    op.drop_index("ix_recording_classroom_id", table_name="recording")
    op.drop_index("ix_lesson_kind", table_name="lesson")
    op.drop_index("ix_classroom_school", table_name="classroom")
    op.drop_table("published_recording")
