"""The analytics tests hear real sound: a private PulseAudio (tests/peers/pulse.py)."""

from __future__ import annotations

from tests.peers.pulse import pulse_server, pulse_sink

__all__ = ["pulse_server", "pulse_sink"]
