"""The Alembic migrations build exactly the schema the models declare, on SQLite and on
PostgreSQL, and controllers starting together on one PostgreSQL do not race."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from controller.db.models import Base
from controller.db.session import MIGRATION_LOCK, MIGRATIONS, make_engine, migrate


def _assert_schema_is_the_models(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff
            assert "alembic_version" in inspect(conn).get_table_names()
            head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head
    finally:
        engine.dispose()


def test_migrations_match_models(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # idempotent
    _assert_schema_is_the_models(db_url)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_controllers_migrating_at_once_both_succeed(db_url: str) -> None:
    """Two processes (as two controllers starting together would be) migrate one fresh
    PostgreSQL database. The test holds the migration lock until both are waiting for it,
    so they do start together; then one builds the schema and the other finds it built."""
    held = make_engine(db_url)
    code = "import sys; from controller.db.session import migrate; migrate(sys.argv[1])"
    try:
        with held.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
            procs = [
                subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE)
                for _ in range(2)
            ]
            deadline = time.monotonic() + 30
            while _waiting_for_the_lock(conn) < 2:
                assert time.monotonic() < deadline, "the migrations never waited for the lock"
                assert all(p.poll() is None for p in procs), [p.stderr for p in procs]
                time.sleep(0.05)
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err.decode()
    finally:
        held.dispose()
    _assert_schema_is_the_models(db_url)


def _waiting_for_the_lock(conn: Connection) -> int:
    """How many sessions wait for the migration lock (an advisory lock's 64-bit key is
    split into classid, the high half, and objid, the low half)."""
    count = conn.scalar(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid::bigint = :hi AND objid::bigint = :lo"
        ),
        {"hi": MIGRATION_LOCK >> 32, "lo": MIGRATION_LOCK & 0xFFFFFFFF},
    )
    conn.commit()
    return int(count or 0)
