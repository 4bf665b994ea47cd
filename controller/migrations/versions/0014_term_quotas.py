"""the quotas each term declares (its set-up file's ``[[term.quota]]``); NULL: the county
plans' defaults

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("term") as batch:
        batch.add_column(sa.Column("quotas", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("term") as batch:
        batch.drop_column("quotas")
