"""A publisher's uplink estimate on Janus, from the receiver reports Janus sends it.

Janus VideoRoom does not estimate a publisher's uplink: the REMB it sends carries only the
room's bitrate cap (and none at all when the room has no cap). What it does send, about
once a second, is an RTCP receiver report per stream: the share of packets lost since the
last one, and (through aiortc) the round trip. ``UplinkEstimator`` turns those into an
estimate for the rate adapter, which keeps its own rules; the REMB stays a cap.

The rule, per report, with ``s`` the rate the encoder sent over the last 2 s:

- **Loss** of ``LOSS_HIGH`` or more: the path carried ``s * (1 - loss)``; the estimate
  is ``DRAIN`` of that, so the uplink's queue can empty.
- **Queueing**: a round trip more than ``QUEUE_DELAY_S`` above the lowest seen, and
  still rising, means the uplink's buffer is filling before it drops anything; the
  estimate is ``DELAY_BACKOFF`` of ``s``. A round trip that is high but falling (the queue
  draining after a step down) or unchanged (aiortc measures it only when a report echoes
  one of its sender reports) is not taken as new congestion.
- **Clean** (loss under ``LOSS_LOW``, no queueing): the estimate grows by ``GROW`` from
  the larger of itself and ``s``, up to ``HEADROOM`` times ``s``, so the adapter climbs a
  level only after several clean seconds.
- In between (some loss, no queueing): the estimate holds.

Jitter is not used: Janus reports it in RTP clock units per stream, and on a link with
bursts of keyframes it rises and falls without congestion.
"""

from __future__ import annotations

import collections

LOSS_HIGH = 0.10  # as Google congestion control's loss-based controller
LOSS_LOW = 0.02
DRAIN = 0.9
QUEUE_DELAY_S = 0.15
DELAY_BACKOFF = 0.8
GROW = 1.08  # per report, about one a second
HEADROOM = 1.5  # as the adapter expects: an estimate grows by about half again what it gets
RATE_WINDOW_S = 2.0


class RateMeter:
    """The rate of a growing byte count over the last ``RATE_WINDOW_S``, bits/s."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def rate(self, now: float, total_bytes: int) -> int | None:
        """Add a sample; the rate since the oldest sample in the window (None: too soon)."""
        self._samples.append((now, total_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 0.5:
            return None
        return int((b1 - b0) * 8 / (t1 - t0))


class UplinkEstimator:
    """Loss- and delay-based estimate of one sent stream's uplink, capped by Janus's REMB."""

    def __init__(self) -> None:
        self.estimate: int | None = None  # before the REMB cap
        self.cap: int | None = None  # the last REMB; 0 or None: no cap
        self.min_rtt_s: float | None = None
        self._last_rtt_s: float | None = None

    def report(self, sending_bps: int, fraction_lost: float, rtt_s: float | None) -> int:
        """Take a receiver report about a stream sent at ``sending_bps``; the new estimate."""
        queueing = False
        if rtt_s is not None and rtt_s > 0:
            if self.min_rtt_s is None or rtt_s < self.min_rtt_s:
                self.min_rtt_s = rtt_s
            rising = self._last_rtt_s is not None and rtt_s > self._last_rtt_s
            queueing = rising and rtt_s - self.min_rtt_s > QUEUE_DELAY_S
            self._last_rtt_s = rtt_s
        if fraction_lost >= LOSS_HIGH:
            estimate = int(sending_bps * (1.0 - fraction_lost) * DRAIN)
        elif queueing:
            estimate = int(sending_bps * DELAY_BACKOFF)
        elif fraction_lost < LOSS_LOW:
            grown = max(self.estimate or 0, sending_bps) * GROW
            estimate = int(min(grown, sending_bps * HEADROOM))
        else:
            estimate = self.estimate if self.estimate is not None else sending_bps
        self.estimate = estimate
        return self.capped()

    def remb(self, bps: int) -> int | None:
        """Take Janus's REMB (the room's cap); the capped estimate, or the cap if none yet."""
        self.cap = bps
        if self.estimate is None:
            return bps if bps > 0 else None
        return self.capped()

    def capped(self) -> int:
        """The estimate within the REMB cap."""
        assert self.estimate is not None
        if self.cap:
            return min(self.estimate, self.cap)
        return self.estimate
