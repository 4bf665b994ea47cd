"""alert state (conditions raised from heartbeats, acknowledged or silenced), and indexes
for the timetable's classroom queries

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
        "alert_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("classroom_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["classroom_id"], ["classroom.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("classroom_id", "key"),
    )
    op.create_index("ix_alert_state_classroom_id", "alert_state", ["classroom_id"])
    op.create_index("ix_lesson_lead_classroom_id", "lesson", ["lead_classroom_id"])
    op.create_index("ix_lesson_receiver_classroom_id", "lesson_receiver", ["classroom_id"])


def downgrade() -> None:
    op.drop_index("ix_lesson_receiver_classroom_id", table_name="lesson_receiver")
    op.drop_index("ix_lesson_lead_classroom_id", table_name="lesson")
    op.drop_index("ix_alert_state_classroom_id", table_name="alert_state")
    op.drop_table("alert_state")
