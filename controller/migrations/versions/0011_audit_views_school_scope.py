"""the audit log is append-only (pruned only past 183 days); accounts get a school scope

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The floor of the audit log's retention (等保 level 3: at least six months). Written out
# here rather than imported: a migration must not change when the code does.
KEEP_DAYS_FLOOR = 183

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only: a row cannot be changed');
    END
    """,
    f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN OLD.ts > datetime('now', '-{KEEP_DAYS_FLOOR} days')
    BEGIN
        SELECT RAISE(ABORT,
            'audit_log is append-only: only rows older than {KEEP_DAYS_FLOOR} days may be pruned');
    END
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("school", sa.String(length=200), nullable=True))
        batch.create_index(batch.f("ix_user_school"), ["school"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    with op.batch_alter_table("user") as batch:
        batch.drop_index(batch.f("ix_user_school"))
        batch.drop_column("school")
