"""Alembic environment for the controller database."""

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from controller.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    """Run migrations online: on the connection the caller holds (PostgreSQL, under the
    migration lock, ``controller.db.session.migrate``), else on the configured URL."""
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    # Batch mode recreates tables on SQLite only (its ALTER TABLE is limited); on
    # PostgreSQL the same operations are plain ALTER TABLE statements.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
