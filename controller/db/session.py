"""Opening the controller database and bringing its schema up to date with Alembic."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from protocols.private_files import sqlite_private

MIGRATIONS = pathlib.Path(__file__).resolve().parent.parent / "migrations"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; treat them as the UTC they were stored as."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def database_url(state_dir: pathlib.Path) -> str:
    """The default SQLite URL inside the controller's state directory."""
    return f"sqlite:///{state_dir / 'controller.sqlite3'}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL and a busy timeout so CLI and daemon can share it.

    A SQLite file is made 0600 before it is opened (its WAL files follow its mode).
    """
    sqlite_private(url)
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
    """Apply every Alembic migration up to head."""
    sqlite_private(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")


def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
