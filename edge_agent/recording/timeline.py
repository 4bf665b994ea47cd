"""Recording timestamps on the lesson's own timeline.

Every recorded frame is stamped with its time since the lesson's scheduled start. Within
one run of a source or one peer connection the media timestamps keep their spacing; a
restart of the source, a reconnection or an agent restart is placed by the wall clock, so
the time that was lost shows up as a gap and never folds the timeline back on itself.
"""

from __future__ import annotations

import fractions


class TrackClock:
    """Maps one track's media timestamps onto the lesson timeline (see module docstring)."""

    def __init__(self, epoch: float) -> None:
        self._epoch = epoch
        self._origin: int | None = None
        self._base = 0
        self._last = -1
        self._last_media: int | None = None

    def reconnected(self) -> None:
        """The next frame starts a new run (new connection, restarted source)."""
        self._origin = None
        self._last_media = None

    def pts(self, rtp_timestamp: int, time_base: fractions.Fraction, now: float) -> int:
        """The recording pts (in ``time_base``) of a frame with this media timestamp."""
        if self._last_media is not None and rtp_timestamp < self._last_media:
            self._origin = None  # the source restarted its clock: a new run
        self._last_media = rtp_timestamp
        if self._origin is None:
            self._origin = rtp_timestamp
            self._base = max(int((now - self._epoch) / time_base), self._last + 1)
        pts = max(self._base + rtp_timestamp - self._origin, self._last + 1)
        self._last = pts
        return pts
