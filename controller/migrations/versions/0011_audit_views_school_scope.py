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
# The same on PostgreSQL, and TRUNCATE refused too; raised as an integrity violation
# (SQLSTATE 23000), as SQLite's RAISE(ABORT) is.
POSTGRESQL_TRIGGERS = (
    f"""
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'DELETE' THEN
            RAISE EXCEPTION 'audit_log is append-only: a row cannot be changed'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF OLD.ts > now() - interval '{KEEP_DAYS_FLOOR} days' THEN
            RAISE EXCEPTION
                'audit_log is append-only: only rows older than {KEEP_DAYS_FLOOR} days may be pruned'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("school", sa.String(length=200), nullable=True))
        batch.create_index(batch.f("ix_user_school"), ["school"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRESQL_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table("user") as batch:
        batch.drop_index(batch.f("ix_user_school"))
        batch.drop_column("school")
