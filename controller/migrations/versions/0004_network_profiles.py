"""network profiles: the profile table, a profile on schools and classrooms, the rung a
lesson was placed on

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_profile",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    for table in ("school", "classroom"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("network_profile", sa.String(length=64), nullable=True))
    with op.batch_alter_table("lesson") as batch:
        batch.add_column(sa.Column("rung", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lesson") as batch:
        batch.drop_column("rung")
    for table in ("classroom", "school"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("network_profile")
    op.drop_table("network_profile")
