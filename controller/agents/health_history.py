"""A week of classroom health, for the console's charts: one sample a minute per
classroom, taken from the heartbeat path (cheap: an in-memory clock per classroom decides
whether a heartbeat is sampled; old rows are pruned at most once an hour)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.db.models import ClassroomHealthSample
from controller.db.session import as_utc

SAMPLE_EVERY = timedelta(minutes=1)
KEEP = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)
FIELDS = ("cpu", "mem", "temp", "audio_dbfs", "send_kbps", "rtt_ms", "clock_offset_ms")


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def send_kbps(health: Mapping[str, object]) -> float | None:
    """The kbps the classroom sends, summed over its sending tracks; None without media."""
    media = health.get("media")
    if not isinstance(media, list) or not media:
        return None
    total = 0.0
    for track in media:
        if isinstance(track, Mapping) and track.get("direction") == "send":
            total += _num(track.get("bitrate_bps")) or 0.0
    return round(total / 1000, 1)


def sample_of(
    classroom_id: str, health: Mapping[str, object], at: datetime
) -> ClassroomHealthSample:
    """The row one heartbeat's health (as JSON) gives."""
    return ClassroomHealthSample(
        classroom_id=classroom_id,
        at=at,
        cpu=_num(health.get("cpu_pct")),
        mem=_num(health.get("mem_pct")),
        temp=_num(health.get("temperature_c")),
        audio_dbfs=_num(health.get("audio_level_dbfs")),
        send_kbps=send_kbps(health),
        rtt_ms=_num(health.get("rtt_ms")),
        clock_offset_ms=_num(health.get("clock_offset_ms")),
    )


class HealthSampler:
    """Decides which heartbeats are kept; one per controller process."""

    def __init__(self, every: timedelta = SAMPLE_EVERY, keep: timedelta = KEEP) -> None:
        self._every = every
        self._keep = keep
        self._last: dict[str, datetime] = {}
        self._pruned_at: datetime | None = None

    def record(
        self, db: Session, classroom_id: str, health: Mapping[str, object], now: datetime
    ) -> bool:
        """Add a sample (the caller commits) if the classroom's last one is a minute old;
        answers whether it did. Prunes samples older than the week now and then."""
        last = self._last.get(classroom_id)
        if last is not None and now - last < self._every:
            return False
        self._last[classroom_id] = now
        db.add(sample_of(classroom_id, health, now))
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            prune(db, now - self._keep)
        return True


def prune(db: Session, before: datetime) -> None:
    """Delete every sample taken before ``before`` (the caller commits)."""
    db.execute(delete(ClassroomHealthSample).where(ClassroomHealthSample.at < before))


def health_samples(db: Session, classroom_id: str, since: datetime) -> list[dict[str, object]]:
    """The classroom's samples since ``since``, oldest first, as JSON."""
    rows = db.scalars(
        select(ClassroomHealthSample)
        .where(ClassroomHealthSample.classroom_id == classroom_id)
        .where(ClassroomHealthSample.at >= since)
        .order_by(ClassroomHealthSample.at)
    ).all()
    return [{"at": as_utc(r.at).isoformat(), **{f: getattr(r, f) for f in FIELDS}} for r in rows]
