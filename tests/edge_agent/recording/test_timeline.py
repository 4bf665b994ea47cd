"""Received-track recording timestamps across reconnections."""

from __future__ import annotations

import fractions

from edge_agent.recording.timeline import TrackClock

TB = fractions.Fraction(1, 90000)


def test_spacing_is_kept_within_a_connection_and_gaps_across() -> None:
    clock = TrackClock(epoch=1000.0)
    assert clock.pts(500_000, TB, now=1001.0) == 90000
    assert clock.pts(503_000, TB, now=1001.2) == 93000  # RTP spacing, not arrival jitter
    clock.reconnected()
    # new connection, RTP restarts at 0, six seconds into the recording
    assert clock.pts(0, TB, now=1006.0) == 540000
    assert clock.pts(3000, TB, now=1006.03) == 543000


def test_never_goes_backwards() -> None:
    clock = TrackClock(epoch=1000.0)
    clock.pts(0, TB, now=1002.0)
    clock.reconnected()
    assert clock.pts(0, TB, now=1001.0) == 180001  # wall clock stepped back: still forward
    assert clock.pts(0, TB, now=1001.0) == 180002  # repeated RTP timestamp
