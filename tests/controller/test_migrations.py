"""The Alembic migrations build exactly the schema the models declare."""

from __future__ import annotations

import pathlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from controller.db.models import Base
from controller.db.session import make_engine, migrate


def test_migrations_match_models(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    migrate(url)
    migrate(url)  # idempotent
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        assert "alembic_version" in inspect(conn).get_table_names()
