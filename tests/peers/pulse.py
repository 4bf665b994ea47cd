"""A real PulseAudio server for tests (scripts/benchlib/pulse_server.py), as fixtures.

- ``pulse_server``: one server per test module;
- ``pulse_sink``: a fresh null sink on it for one test (unloaded afterwards), by name.
Import them into a ``conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from benchlib.pulse_server import (
    RATE,
    Player,
    PulseServer,
    after_onset,
    available,
    tone,
    tone_level,
    typical_tone_level,
    why_unavailable,
)

__all__ = [
    "RATE",
    "Player",
    "PulseServer",
    "after_onset",
    "available",
    "pulse_server",
    "pulse_sink",
    "tone",
    "tone_level",
    "typical_tone_level",
    "why_unavailable",
]


@pytest.fixture(scope="module")
def pulse_server() -> Iterator[PulseServer]:
    """A PulseAudio server for the test module (skips off CI when not installed)."""
    if not available() and not os.environ.get("CI"):
        pytest.skip(why_unavailable())
    server = PulseServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pulse_sink(pulse_server: PulseServer) -> Iterator[str]:
    """A fresh null sink on ``pulse_server`` for one test; yields its name."""
    name = f"room_{uuid.uuid4().hex[:8]}"
    pulse_server.add_sink(name)
    try:
        yield name
    finally:
        if pulse_server.loaded(name):
            pulse_server.remove_sink(name)
