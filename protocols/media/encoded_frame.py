"""One encoded media frame, as it moves between encoder, sender, relay and recorder."""

from __future__ import annotations

import fractions
from dataclasses import dataclass, field

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """An encoded access unit: H.264 Annex-B bytes for video, one Opus packet for audio.

    ``pts`` counts ``time_base`` units from the start of the source. ``capture_ms`` is the
    wall-clock time (ms since the epoch) at which the source captured the frame, when known.
    """

    kind: str  # "video" or "audio"
    data: bytes
    pts: int
    time_base: fractions.Fraction
    keyframe: bool
    capture_ms: float = 0.0
    meta: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """The presentation time in seconds."""
        return float(self.pts * self.time_base)
