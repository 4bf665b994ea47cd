"""The room tests: a real PulseAudio (tests/peers/pulse.py) for the sound, an Xvfb server
and synthetic feeds with the burned-in code for the screens."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.room.screens import RoomScreens
from tests.peers.pulse import pulse_server, pulse_sink


def start_xvfb(number: int, size: str) -> subprocess.Popen[bytes]:
    """Start Xvfb on ``:number`` and wait for its socket."""
    proc = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb :{number} did not start")
        time.sleep(0.05)
    return proc


@pytest.fixture
def xdisplay() -> Iterator[str]:
    """A 2560x720 X screen: room for a panel and a mid-screen side by side."""
    number = 93
    proc = start_xvfb(number, "2560x720")
    yield f":{number}"
    proc.terminate()
    proc.wait(5)


class Feed:
    """A synthetic camera fed to the screens at its frame rate by the test."""

    def __init__(self, key: str, width: int, height: int, label: str) -> None:
        self.key = key
        self.camera = SyntheticCamera(width, height, 30, label)
        self.counter = 0

    def push(self, screens: RoomScreens) -> None:
        self.counter += 1
        screens.show(self.key, self.camera.frame(self.counter, 1_700_000_000_000 + self.counter))


def wait_for(condition: object, timeout: float = 5.0) -> None:
    """Poll a callable until it returns true."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


__all__ = ["Feed", "pulse_server", "pulse_sink", "shutil", "start_xvfb", "wait_for"]
