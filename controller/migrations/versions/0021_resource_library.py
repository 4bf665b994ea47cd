"""the resource library (资源库): items with metadata and review, clips (微课)

Every recording published before review existed becomes an approved item, with its
metadata taken from the lesson and the classroom.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "library_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("classroom_id", sa.String(length=64), nullable=False),
        sa.Column("track", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("clip_start_s", sa.Float(), nullable=True),
        sa.Column("clip_end_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("codec", sa.String(length=16), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.String(length=32), nullable=False),
        sa.Column("chapter", sa.String(length=200), nullable=False),
        sa.Column("teacher", sa.String(length=64), nullable=False),
        sa.Column("school", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_reason", sa.String(length=500), nullable=False),
        sa.Column("unpublished_by", sa.String(length=64), nullable=True),
        sa.Column("unpublished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unpublish_reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["classroom_id"], ["classroom.id"]),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_library_item_lesson_id", "library_item", ["lesson_id"])
    op.create_index("ix_library_item_school", "library_item", ["school"])
    op.create_index("ix_library_item_status", "library_item", ["status"])
    # The recordings published so far were published without review: approved items.
    op.execute(
        sa.text(
            "INSERT INTO library_item (kind, lesson_id, classroom_id, track, title, subject,"
            " grade, chapter, teacher, school, status, requested_by, requested_at,"
            " reviewed_by, reviewed_at, review_reason, unpublish_reason)"
            " SELECT 'recording', p.lesson_id, p.classroom_id, p.track,"
            " CASE WHEN l.title = '' THEN substr(p.lesson_id || ' ' || p.track, 1, 200)"
            " ELSE l.title END,"
            " l.subject, '', '', substr(COALESCE(l.teacher_id, ''), 1, 64), c.school,"
            " 'approved', p.published_by, p.published_at, p.published_by, p.published_at,"
            " 'published before review existed (migration 0021)', ''"
            " FROM published_recording p"
            " JOIN lesson l ON l.id = p.lesson_id"
            " JOIN classroom c ON c.id = p.classroom_id"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_library_item_status", table_name="library_item")
    op.drop_index("ix_library_item_school", table_name="library_item")
    op.drop_index("ix_library_item_lesson_id", table_name="library_item")
    op.drop_table("library_item")
