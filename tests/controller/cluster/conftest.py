"""Two real controller processes on one PostgreSQL database of this test."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from benchlib.cluster_rig import ClusterRig
from pg_server import PgServer


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """An empty PostgreSQL database of this test (PostgreSQL only: a cluster needs it)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def cluster(pg_url: str, tmp_path: pathlib.Path) -> Iterator[ClusterRig]:
    """Two controllers on ``pg_url``, started; stopped (and their agents) afterwards."""
    rig = ClusterRig(pg_url, count=2, root=tmp_path, heartbeat_s=1.0, prepare_s=1.0)
    try:
        rig.start_controller()
        yield rig
    finally:
        rig.stop()
