"""Database URLs: which engine, spelled for our driver, and shown without the password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# psycopg 3 is the PostgreSQL driver we install; SQLAlchemy's default for a bare
# "postgresql://" is psycopg2, which we do not.
POSTGRESQL_DRIVER = "postgresql+psycopg"


def parse(url: str) -> URL:
    """The URL parsed, a bare ``postgresql://`` given our driver; ValueError for one that
    is neither SQLite nor PostgreSQL, or does not parse (the message hides a password)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        raise ValueError(
            f"--database: {hide_password(url)!r} is not a database URL; write "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:///PATH"
        ) from err
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername=POSTGRESQL_DRIVER)
        return parsed
    if backend == "sqlite":
        return parsed
    raise ValueError(
        f"--database: {parsed.render_as_string(hide_password=True)}: the controller runs on "
        "PostgreSQL (postgresql+psycopg://…) or SQLite (sqlite:///…), not "
        f"{backend!r}"
    )


def normalise(url: str) -> str:
    """``url`` as SQLAlchemy should open it (password kept)."""
    return parse(url).render_as_string(hide_password=False)


def is_postgresql(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url.startswith(("postgresql", "postgres:"))


def hide_password(url: str) -> str:
    """``url`` fit for a log or an error message: the password shown as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL we can parse: hide whatever lies between "scheme://user:" and "@".
        scheme, sep, rest = url.partition("://")
        if not sep or "@" not in rest:
            return url
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
