"""A libpq connection string for the cluster's own connections, from the controller's
SQLAlchemy URL."""

from __future__ import annotations

from controller.db.urls import parse

# libpq gives up on a peer that stopped answering (a dead machine, a cut cable) after this
# long, instead of the kernel's minutes: a leader must notice it lost its lock quickly.
TCP_USER_TIMEOUT_MS = 3000
CONNECT_TIMEOUT_S = 3


def libpq_conninfo(url: str) -> str:
    """``url`` (postgresql+psycopg://…) as psycopg's own connect() takes it."""
    return parse(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect_kwargs(application_name: str) -> dict[str, object]:
    """Keepalives and timeouts for a long-lived connection, named in pg_stat_activity."""
    return {
        "application_name": application_name[:63],
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": 2,
        "keepalives_interval": 1,
        "keepalives_count": 2,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "autocommit": True,
    }
