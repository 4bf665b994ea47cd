"""a lesson's Janus room, adopted by a restarted controller; each agent's protocol minor

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_media_room",
        sa.Column("lesson_id", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("room", sa.BigInteger(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lesson_id"], ["lesson.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lesson_id"),
    )
    with op.batch_alter_table("classroom") as batch:
        batch.add_column(sa.Column("protocol_minor", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("classroom") as batch:
        batch.drop_column("protocol_minor")
    op.drop_table("lesson_media_room")
