"""What the controller knows, as Prometheus metrics, read from the database at each scrape.

Gauges are built afresh on every scrape (a custom collector), so a controller restarted,
or a second one reading the same database, reports the same figures: nothing lives only
in this process but the API's own latency histogram.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from controller.agents.alerts import active_alerts
from controller.db.models import Classroom, Lesson, Recording, StoredSegment, UploadSession
from controller.db.session import utcnow
from controller.lessons.states import LESSON_STATES

PREFIX = "classbridge"
# Per-track figures an agent reports in its heartbeat, as (metric, heartbeat field, help).
TRACK_FIGURES = (
    ("track_fps", "fps", "Frames per second of a track, as its agent last reported"),
    ("track_bitrate_bps", "bitrate_bps", "Bit rate of a track, bits per second"),
    ("track_loss_pct", "loss_pct", "Packets of a track lost on the way, percent (RTCP)"),
    ("track_rtt_ms", "rtt_ms", "Round trip from a sending agent to the relay, ms (RTCP)"),
)


class ControllerCollector(Collector):
    """Reads the database (and who is online) when Prometheus scrapes; ``school`` keeps
    to one school's classrooms (an account scoped to its school), None is the county."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        online: Callable[[], list[str]],
        clock: Callable[[], datetime] = utcnow,
        school: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._online = online
        self._clock = clock
        self._school = school

    def collect(self) -> Iterator[Metric]:
        """Every metric, from one read of the database."""
        online = set(self._online())
        with self._sessions() as db:
            query = select(Classroom).order_by(Classroom.id)
            if self._school is not None:
                query = query.where(Classroom.school == self._school)
            rooms = db.scalars(query).all()
            ids = [r.id for r in rooms]
            mine = self._school is None
            states = dict(
                db.execute(
                    select(Lesson.state, func.count())
                    .where(_among(Lesson.lead_classroom_id, ids, mine))
                    .group_by(Lesson.state)
                ).all()
            )
            open_uploads = db.scalar(
                select(func.count())
                .select_from(UploadSession)
                .where(UploadSession.state == "open", _among(UploadSession.classroom_id, ids, mine))
            )
            stored = db.scalar(
                select(func.coalesce(func.sum(StoredSegment.bytes), 0)).where(
                    _among(StoredSegment.classroom_id, ids, mine)
                )
            )
            recordings = db.scalar(
                select(func.count())
                .select_from(Recording)
                .where(_among(Recording.classroom_id, ids, mine))
            )
            alerts = [a for a in active_alerts(db, self._clock()) if mine or a["classroom"] in ids]
        yield _gauge(
            "agents_online", "Classroom agents connected now", len(online & {r.id for r in rooms})
        )
        yield _gauge("classrooms", "Classrooms known to the controller", len(rooms))
        lessons = GaugeMetricFamily(
            f"{PREFIX}_lessons", "Lessons in the database, by state", labels=["state"]
        )
        for state in sorted(set(LESSON_STATES) | set(states)):
            lessons.add_metric([state], float(states.get(state, 0)))
        yield lessons
        yield from _rooms(rooms, online)
        yield _gauge(
            "uploads_open", "Uploads agents have begun and not finished", open_uploads or 0
        )
        yield _gauge("storage_segment_bytes", "Bytes of recorded segments in storage", stored or 0)
        yield _gauge("recordings", "Stitched recordings in the catalogue", recordings or 0)
        by_kind: Counter[str] = Counter(str(a.get("kind", "")) for a in alerts)
        open_alerts = GaugeMetricFamily(
            f"{PREFIX}_alerts_open",
            "Alerts active now (silenced ones included), by kind",
            labels=["kind"],
        )
        for kind, n in sorted(by_kind.items()):
            open_alerts.add_metric([kind], float(n))
        yield open_alerts


def _among(
    column: InstrumentedAttribute[str], ids: list[str], everyone: bool
) -> ColumnElement[bool]:
    """``column`` is one of ``ids`` (no condition for the county's view)."""
    return true() if everyone else column.in_(ids)


def _number(value: object) -> float | None:
    """A heartbeat's figure as a float; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=float(value))


def _rooms(rooms: Sequence[Classroom], online: set[str]) -> Iterator[Metric]:
    """Each online classroom's last heartbeat: uploads waiting, and its tracks' figures."""
    labels = ["classroom", "school"]
    pending = GaugeMetricFamily(
        f"{PREFIX}_agent_uploads_pending_bytes",
        "Bytes an agent still has to upload",
        labels=labels,
    )
    cpu = GaugeMetricFamily(f"{PREFIX}_agent_cpu_pct", "An agent's CPU use, percent", labels=labels)
    tracks = {
        name: GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=[*labels, "track", "direction"])
        for name, _, text in TRACK_FIGURES
    }
    for room in rooms:
        if room.id not in online:
            continue
        health: dict[str, Any] = dict(room.health or {})
        key = [room.id, room.school or ""]
        pending.add_metric(key, _number(health.get("uploads_pending_bytes")) or 0.0)
        cpu.add_metric(key, _number(health.get("cpu_pct")) or 0.0)
        media = health.get("media")
        for track in media if isinstance(media, list) else []:
            if not isinstance(track, dict):
                continue
            for name, field, _ in TRACK_FIGURES:
                value = _number(track.get(field))
                if value is not None:
                    tracks[name].add_metric(
                        [*key, str(track.get("track", "")), str(track.get("direction", ""))],
                        value,
                    )
    yield pending
    yield cpu
    yield from tracks.values()
