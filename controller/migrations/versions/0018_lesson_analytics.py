"""lesson analytics (S-T 分析): each classroom's talk timeline of a lesson, and the
lesson's S-T figures for the reports

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_talk",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("codes", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["classroom_id"], ["classroom.id"]),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"]),
        sa.PrimaryKeyConstraint("lesson_id", "classroom_id"),
    )
    op.create_table(
        "lesson_analysis",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Text(), nullable=False),
        sa.Column("rt", sa.Float(), nullable=True),
        sa.Column("ch", sa.Float(), nullable=True),
        sa.Column("teaching_type", sa.String(length=16), nullable=True),
        sa.Column("teacher_talk_s", sa.Integer(), nullable=False),
        sa.Column("student_talk_s", sa.Integer(), nullable=False),
        sa.Column("rooms", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"]),
        sa.PrimaryKeyConstraint("lesson_id"),
    )
    op.create_index(
        op.f("ix_lesson_analysis_teaching_type"),
        "lesson_analysis",
        ["teaching_type"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lesson_analysis_teaching_type"), table_name="lesson_analysis")
    op.drop_table("lesson_analysis")
    op.drop_table("lesson_talk")
