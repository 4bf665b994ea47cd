"""classroom health history: one sample a minute per classroom from its heartbeats, kept
for a week, for the console's charts

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "classroom_health_sample",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("classroom_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=True),
        sa.Column("mem", sa.Float(), nullable=True),
        sa.Column("temp", sa.Float(), nullable=True),
        sa.Column("audio_dbfs", sa.Float(), nullable=True),
        sa.Column("send_kbps", sa.Float(), nullable=True),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.Column("clock_offset_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["classroom_id"], ["classroom.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_classroom_health_sample_at", "classroom_health_sample", ["at"])
    op.create_index(
        "ix_classroom_health_sample_classroom_at",
        "classroom_health_sample",
        ["classroom_id", "at"],
    )


def downgrade() -> None:
    op.drop_index("ix_classroom_health_sample_classroom_at", table_name="classroom_health_sample")
    op.drop_index("ix_classroom_health_sample_at", table_name="classroom_health_sample")
    op.drop_table("classroom_health_sample")
