"""a receiving room's assistant teacher (辅导教师) in each lesson and lesson series

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lesson_receiver") as batch:
        batch.add_column(sa.Column("assistant_teacher_id", sa.String(length=64), nullable=True))
        batch.create_index(
            batch.f("ix_lesson_receiver_assistant_teacher_id"), ["assistant_teacher_id"]
        )
    with op.batch_alter_table("lesson_series") as batch:
        batch.add_column(sa.Column("assistants", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lesson_series") as batch:
        batch.drop_column("assistants")
    with op.batch_alter_table("lesson_receiver") as batch:
        batch.drop_index(batch.f("ix_lesson_receiver_assistant_teacher_id"))
        batch.drop_column("assistant_teacher_id")
