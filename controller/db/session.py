"""Opening the controller database and bringing its schema up to date with Alembic.

SQLite (one file in the state directory) is the default; PostgreSQL is named with a
``postgresql+psycopg://`` URL (``--database``).
"""

from __future__ import annotations

import logging
import pathlib
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, pool, text
from sqlalchemy.orm import Session, sessionmaker

from controller.db.reach import CONNECT_TIMEOUT_S
from controller.db.urls import hide_password, is_postgresql, normalise
from protocols.private_files import sqlite_private

MIGRATIONS = pathlib.Path(__file__).resolve().parent.parent / "migrations"
# The PostgreSQL advisory lock (one 64-bit key per database) held while migrating, so
# that controllers started together migrate one after the other: b"cbmigrat".
MIGRATION_LOCK = 0x63626D6967726174

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands back naive datetimes (the UTC they were
    stored as), PostgreSQL aware ones."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def database_url(state_dir: pathlib.Path) -> str:
    """The default SQLite URL inside the controller's state directory."""
    return f"sqlite:///{state_dir / 'controller.sqlite3'}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL and a busy timeout so CLI and daemon can share it.

    A SQLite file is made 0600 before it is opened (its WAL files follow its mode).
    PostgreSQL sessions run in UTC, and a pooled connection is checked before use, so the
    controller recovers by itself when the server restarts.
    """
    sqlite_private(url)
    if is_postgresql(url):
        return create_engine(
            normalise(url),
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c TimeZone=UTC"},
        )
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def migrate(url: str) -> None:
    """Apply every Alembic migration up to head; on PostgreSQL under an advisory lock."""
    sqlite_private(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if not is_postgresql(url):
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        command.upgrade(cfg, "head")
        return
    engine = create_engine(
        normalise(url),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c TimeZone=UTC"},
    )
    try:
        with engine.connect() as conn:
            _lock(conn, url)
            try:
                # env.py migrates on this connection, the one holding the lock.
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            finally:
                conn.rollback()  # a failed migration leaves its transaction open
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def _lock(conn: Connection, url: str) -> None:
    """Take the migration lock, saying so when another controller holds it."""
    got = conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    if not got:
        log.info("waiting for another controller migrating %s", hide_password(url))
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    # A session-level lock outlives this transaction; Alembic then opens its own.
    conn.commit()


def batch_engine(engine: Engine) -> Engine | None:
    """A second engine on the same SQLite file whose transactions really are one each.

    pysqlite begins a transaction only before its first INSERT/UPDATE/DELETE; a SAVEPOINT
    issued first starts one that its RELEASE commits, so a batch of savepoints is as many
    transactions. Here the driver's own transaction handling is off and every transaction
    is begun explicitly with ``BEGIN IMMEDIATE``: the batch takes SQLite's write lock at
    its start (waiting up to the busy timeout like any writer) and commits once. Only the
    batch writers use it, so the rest of the controller keeps pysqlite's locking.
    None on PostgreSQL, whose savepoints already sit inside one transaction.
    """
    if engine.dialect.name != "sqlite":
        return None
    batch = make_engine(engine.url.render_as_string(hide_password=False))

    @event.listens_for(batch, "connect")
    def _autocommit_driver(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # SQLAlchemy says BEGIN itself, below

    @event.listens_for(batch, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return batch


def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
