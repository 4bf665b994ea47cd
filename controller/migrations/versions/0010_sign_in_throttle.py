"""failed sign-ins per source address and user name, for throttling instead of lock-out

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failure",
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("remote", "username"),
    )
    op.create_index(
        op.f("ix_sign_in_failure_username"), "sign_in_failure", ["username"], unique=False
    )
    op.create_index(
        op.f("ix_sign_in_failure_last_at"), "sign_in_failure", ["last_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_failure_last_at"), table_name="sign_in_failure")
    op.drop_index(op.f("ix_sign_in_failure_username"), table_name="sign_in_failure")
    op.drop_table("sign_in_failure")
