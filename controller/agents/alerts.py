"""Alerts raised from classrooms' heartbeats: what counts as an alert, and the stored state
of each (first and last seen, acknowledged, silenced for maintenance).

``record_heartbeat_alerts`` brings one classroom's rows in line with its heartbeat: it
reads that classroom's rows (indexed) and asks about lessons only when the heartbeat
reports the classroom not ready. The heartbeat writer does the same for a whole batch at
once (``controller.agents.alert_batch``) and uses this one when it must go row by row.

Each kind of alert has a severity (``severity``), which decides who is told and whether
quiet hours hold the message back (``controller.notify``). Loss and round trip raise only
once they last ``SUSTAINED`` (a row waits inactive with ``pending_since`` until then)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol, cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import AlertState, Classroom, Lesson, LessonReceiver, UploadSession
from controller.db.session import as_utc
from controller.lessons.states import ACTIVE_STATES

# Thresholds over which a heartbeat's numbers become alerts.
# An alert row's key column holds this many characters (alert_state.key).
KEY_MAX = 100
DISK_PCT_MAX = 90.0
DISK_FREE_MIN_BYTES = 2 * 1024**3
UPLOADS_PENDING_MAX = 20
CLOCK_OFFSET_MAX_MS = 500.0
RTT_MAX_MS = 300.0
PACKET_LOSS_MAX_PCT = 8.0  # the meeting-room fleets' threshold (MISSION.md)
# A classroom not ready this long before a lesson (or during it) raises an alert.
READY_BEFORE = timedelta(minutes=30)
MAX_SILENCE_HOURS = 24 * 14
# Alerts the controller raises itself (not from a heartbeat): a heartbeat never clears
# them; they stay until acknowledged or silenced.
CONTROLLER_RAISED: frozenset[str] = frozenset({"key_replaced"})
# Raised by the controller when presence declares an agent lost (or it is not there when a
# lesson prepares); its next heartbeat clears it like any heartbeat alert.
OFFLINE = "offline"
# Network conditions that must last this long before they raise: one bad heartbeat is
# not worth a message to a technician's phone.
SUSTAINED: dict[str, timedelta] = {
    "packet_loss": timedelta(minutes=1),
    "latency": timedelta(minutes=1),
}
# An upload the controller has had open this long while the agent still has files waiting.
UPLOAD_STUCK_AFTER = timedelta(hours=1)

INFO, WARNING, CRITICAL = "info", "warning", "critical"
SEVERITIES: tuple[str, ...] = (INFO, WARNING, CRITICAL)
# By kind (the key before ':'); a kind not listed is a warning. Critical: a lesson is lost
# or at risk now, so it goes through quiet hours.
SEVERITY_OF_KIND: dict[str, str] = {
    OFFLINE: CRITICAL,
    "not_ready": CRITICAL,
    "device_lost": CRITICAL,
    "key_replaced": CRITICAL,
    "mic_silent": WARNING,
    "disk_low": WARNING,
    "clock_offset": WARNING,
    "packet_loss": WARNING,
    "latency": WARNING,
    "upload_stuck": WARNING,
    "upload_backlog": INFO,
}


def severity(key: str) -> str:
    """The severity of an alert by its key (``kind`` or ``kind:detail``)."""
    return SEVERITY_OF_KIND.get(key.split(":", 1)[0], WARNING)


def severity_rank(name: str) -> int:
    """0 for info, 1 for warning, 2 for critical (ValueError for another name)."""
    return SEVERITIES.index(name)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dict(value: object) -> dict[str, object]:
    if type(value) is dict:  # parsed JSON (the heartbeat path): its keys are strings
        return cast(dict[str, object], value)
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def alerts_from_health(health: Mapping[str, object], lesson_soon: bool) -> dict[str, str]:
    """The alerts a heartbeat's health raises, by key (``kind`` or ``kind:detail``, cut to
    the ``KEY_MAX`` characters a row keeps) → message. ``lesson_soon``: whether the
    classroom has a lesson now or shortly, which turns readiness reasons into alerts."""
    out = _raised(health, lesson_soon)
    # Looked up as stored: a longer key (an agent's own alert code, a long device name)
    # found no row on its next sighting, and its new row collided with the first.
    return {key[:KEY_MAX]: message for key, message in out.items()}


def _raised(health: Mapping[str, object], lesson_soon: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, message in _dict(health.get("alerts")).items():
        out[code] = str(message)
    for name, device in _dict(health.get("devices")).items():
        state = _dict(device).get("state")
        if state in ("lost", "failed"):
            detail = _dict(device).get("detail") or ""
            out[f"device_lost:{name}"] = (
                f"device {name!r} is {state}{f' ({detail})' if detail else ''}; "
                "check its cable and power, then the agent's device log"
            )
    if any(key.startswith("device_lost:") for key in out):
        # The agent's own summary of the same devices: one alert (and one message) each.
        out.pop("device_lost", None)
    if lesson_soon:
        for reason, message in _dict(health.get("readiness")).items():
            out[f"not_ready:{reason}"] = f"not ready for the next lesson: {message}"
    disk_pct, disk_free = _num(health.get("disk_pct")), _num(health.get("disk_free_bytes"))
    if "disk_low" not in out and (
        (disk_pct is not None and disk_pct >= DISK_PCT_MAX)
        or (disk_free is not None and disk_free < DISK_FREE_MIN_BYTES)
    ):
        out["disk_low"] = (
            f"disk {disk_pct or 0:.0f}% full, {(disk_free or 0) / 1024**3:.1f} GiB free; "
            "let uploads finish or free space on the agent"
        )
    pending = _num(health.get("uploads_pending"))
    if pending is not None and pending >= UPLOADS_PENDING_MAX:
        out["upload_backlog"] = (
            f"{pending:.0f} recordings wait to upload; check the school's uplink and the "
            "controller's storage"
        )
    offset = _num(health.get("clock_offset_ms"))
    if offset is not None and abs(offset) > CLOCK_OFFSET_MAX_MS:
        out["clock_offset"] = (
            f"clock is {offset:+.0f} ms off the controller's; check the agent's NTP settings"
        )
    rtt = _num(health.get("rtt_ms"))
    if rtt is not None and rtt > RTT_MAX_MS:
        out["latency"] = f"round trip to the controller is {rtt:.0f} ms (over {RTT_MAX_MS:.0f})"
    loss = _num(health.get("packet_loss_pct"))
    worst = ""
    # Per track, from the agent's RTCP statistics (heartbeat media entries).
    media = health.get("media")
    for entry in media if isinstance(media, list) else []:
        track_loss = _num(entry.get("loss_pct")) if isinstance(entry, dict) else None
        if track_loss is not None and (loss is None or track_loss > loss):
            loss = track_loss
            worst = f" on {entry.get('direction', '')} track {entry.get('track', '')}"
    if loss is not None and loss > PACKET_LOSS_MAX_PCT:
        out["packet_loss"] = f"{loss:.1f}% of packets lost{worst} (over {PACKET_LOSS_MAX_PCT:.0f}%)"
    media_rtt = [
        _num(e.get("rtt_ms"))
        for e in (media if isinstance(media, list) else [])
        if isinstance(e, dict)
    ]
    slowest = max((x for x in media_rtt if x is not None), default=None)
    if slowest is not None and slowest > RTT_MAX_MS and "latency" not in out:
        out["latency"] = (
            f"media round trip to the relay is {slowest:.0f} ms (over {RTT_MAX_MS:.0f})"
        )
    return out


def lesson_soon(db: Session, classroom_id: str, now: datetime) -> bool:
    """Whether the classroom has a lesson under way or starting within ``READY_BEFORE``."""
    received = select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id == classroom_id)
    query = (
        select(Lesson.id)
        .where(
            Lesson.state.in_(ACTIVE_STATES),
            Lesson.start_at < now + READY_BEFORE,
            Lesson.end_at > now,
            or_(Lesson.lead_classroom_id == classroom_id, Lesson.id.in_(received)),
        )
        .limit(1)
    )
    return db.scalar(query) is not None


def _upload_stuck(db: Session, classroom_id: str, now: datetime) -> str | None:
    """The message of an upload open for over an hour, or None."""
    oldest = db.scalar(
        select(UploadSession.created_at)
        .where(
            UploadSession.classroom_id == classroom_id,
            UploadSession.state == "open",
            UploadSession.created_at < now - UPLOAD_STUCK_AFTER,
        )
        .order_by(UploadSession.created_at)
        .limit(1)
    )
    return None if oldest is None else stuck_message(as_utc(oldest), now)


def stuck_message(oldest: datetime, now: datetime) -> str:
    """The ``upload_stuck`` message for an upload open since ``oldest``."""
    hours = (now - oldest).total_seconds() / 3600
    return (
        f"an upload has been open for {hours:.1f} h without finishing; check the school's "
        "uplink, then 'classroom-agent doctor' on the classroom PC"
    )


def record_heartbeat_alerts(
    db: Session, classroom_id: str, health: Mapping[str, object], now: datetime
) -> None:
    """Bring the classroom's alert rows in line with its latest heartbeat (the caller
    commits): new alerts get a row, lasting ones a fresh ``last_seen``, cleared ones turn
    inactive (keeping a silence); an alert that comes back is new again. A ``SUSTAINED``
    kind waits in an inactive row (``pending_since``) until it has lasted long enough."""
    readiness = _dict(health.get("readiness"))
    soon = bool(readiness) and lesson_soon(db, classroom_id, now)
    raised = alerts_from_health(health, soon)
    pending = _num(health.get("uploads_pending"))
    if pending is not None and pending > 0:
        stuck = _upload_stuck(db, classroom_id, now)
        if stuck is not None:
            raised["upload_stuck"] = stuck
    rows = {
        r.key: r
        for r in db.scalars(select(AlertState).where(AlertState.classroom_id == classroom_id))
    }
    for key, message in raised.items():
        row = rows.get(key)
        hold = SUSTAINED.get(key.split(":", 1)[0])
        if row is None:
            row = AlertState(
                classroom_id=classroom_id,
                key=key,
                message=message,
                first_seen=now,
                last_seen=now,
                active=hold is None,
                pending_since=now if hold is not None else None,
            )
            db.add(row)
            continue
        if not row.active:
            if hold is not None:
                if row.pending_since is None:
                    row.pending_since = now
                if now - as_utc(row.pending_since) < hold:
                    row.message = message
                    continue
            row.active, row.first_seen = True, as_utc(row.pending_since or now)
            row.pending_since = None
            row.acknowledged_by = row.acknowledged_at = None
        row.last_seen, row.message = now, message
    for key, row in rows.items():
        if key not in raised and key not in CONTROLLER_RAISED:
            row.active = False
            row.pending_since = None


def raise_offline(db: Session, classroom_id: str, message: str, now: datetime) -> None:
    """Raise the ``offline`` alert of a classroom (the caller commits); one already
    active is left as it is, and a maintenance silence is kept."""
    row = db.scalar(
        select(AlertState).where(AlertState.classroom_id == classroom_id, AlertState.key == OFFLINE)
    )
    if row is None:
        row = AlertState(classroom_id=classroom_id, key=OFFLINE, first_seen=now, active=False)
        db.add(row)
    if not row.active:
        row.active, row.first_seen = True, now
        row.acknowledged_by = row.acknowledged_at = None
    row.last_seen, row.message, row.pending_since = now, message, None


def raise_offline_before_lessons(db: Session, online: set[str], now: datetime) -> list[str]:
    """Raise ``offline`` for each classroom not online that has a lesson under way or
    starting within ``READY_BEFORE`` (commits); answers those classrooms. A PC switched off
    overnight is no alert until its lesson nears: then it is, while there is time to act."""
    lessons = db.scalars(
        select(Lesson)
        .where(
            Lesson.state.in_(ACTIVE_STATES),
            Lesson.start_at < now + READY_BEFORE,
            Lesson.end_at > now,
        )
        .order_by(Lesson.start_at)
    ).all()
    first: dict[str, Lesson] = {}
    for lesson in lessons:
        for cid in lesson.classroom_ids:
            first.setdefault(cid, lesson)
    raised = []
    for cid, lesson in sorted(first.items()):
        if cid in online or db.get(Classroom, cid) is None:
            continue
        start = as_utc(lesson.start_at)
        raise_offline(
            db,
            cid,
            f"the agent is offline and lesson {lesson.id} starts {start.isoformat()}; check "
            "the classroom PC's power and network ('systemctl status classroom-agent')",
            now,
        )
        raised.append(cid)
    db.commit()
    return raised


def raise_alert(db: Session, classroom_id: str, key: str, message: str, now: datetime) -> None:
    """Raise (or raise again) an alert the controller itself found; commits. It shows on
    the dashboard like a heartbeat's, unacknowledged, until someone acknowledges it."""
    row = db.scalar(
        select(AlertState).where(AlertState.classroom_id == classroom_id, AlertState.key == key)
    )
    if row is None:
        row = AlertState(classroom_id=classroom_id, key=key, first_seen=now)
        db.add(row)
    row.active, row.first_seen, row.last_seen, row.message = True, now, now, message
    row.acknowledged_by = row.acknowledged_at = None
    row.silenced_until = None
    db.commit()


class NamedRoom(Protocol):
    """What an alert shows of its classroom: a stored row, or just these two columns."""

    @property
    def name(self) -> str: ...

    @property
    def school(self) -> str: ...


def alert_document(row: AlertState, room: NamedRoom | None, now: datetime) -> dict[str, object]:
    """One alert as JSON for the dashboard."""
    first = as_utc(row.first_seen)
    until = as_utc(row.silenced_until) if row.silenced_until is not None else None
    silenced = until is not None and until > now
    return {
        "id": row.id,
        "classroom": row.classroom_id,
        "classroom_name": room.name if room is not None else row.classroom_id,
        "school": room.school if room is not None else "",
        "key": row.key,
        "kind": row.key.split(":", 1)[0],
        "message": row.message,
        "first_seen": first.isoformat(),
        "last_seen": as_utc(row.last_seen).isoformat(),
        "age_s": max(0, int((now - first).total_seconds())),
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": as_utc(row.acknowledged_at).isoformat() if row.acknowledged_at else None,
        "silenced_until": until.isoformat() if until is not None and silenced else None,
        "silenced": silenced,
        "severity": severity(row.key),
    }


def active_alerts(db: Session, now: datetime) -> list[dict[str, object]]:
    """Every active alert, oldest first, silenced ones included (flagged)."""
    rows = db.scalars(
        select(AlertState).where(AlertState.active.is_(True)).order_by(AlertState.first_seen)
    ).all()
    # Only the alerting classrooms' names and schools: whole rows of every classroom
    # would decode their health and inventory documents on each dashboard load.
    query = select(Classroom.id, Classroom.name, Classroom.school).where(
        Classroom.id.in_({r.classroom_id for r in rows})
    )
    rooms: dict[str, NamedRoom] = {room.id: room for room in db.execute(query)}
    return [alert_document(r, rooms.get(r.classroom_id), now) for r in rows]


def _alert(db: Session, alert_id: str) -> AlertState:
    try:
        row = db.get(AlertState, int(alert_id))
    except (ValueError, OverflowError):  # not a number, or beyond SQLite's 64-bit ids
        row = None
    if row is None:
        raise NotFound(f"alert {alert_id!r} does not exist; list alerts with GET /api/v1/dashboard")
    return row


def acknowledge(db: Session, alert_id: str, username: str, now: datetime) -> dict[str, object]:
    """Mark an alert acknowledged by ``username``; answers the alert."""
    row = _alert(db, alert_id)
    row.acknowledged_by, row.acknowledged_at = username, now
    db.commit()
    return alert_document(row, db.get(Classroom, row.classroom_id), now)


def silence(
    db: Session, alert_id: str, hours: object, username: str, now: datetime
) -> dict[str, object]:
    """Silence an alert for ``hours`` (maintenance); also acknowledges it."""
    value = _num(hours)
    if value is None or not 0 < value <= MAX_SILENCE_HOURS:
        raise InvalidRequest(
            f'body must be {{"hours": n}} with 0 < n <= {MAX_SILENCE_HOURS}; got {hours!r}'
        )
    row = _alert(db, alert_id)
    row.silenced_until = now + timedelta(hours=value)
    if row.acknowledged_by is None:
        row.acknowledged_by, row.acknowledged_at = username, now
    db.commit()
    return alert_document(row, db.get(Classroom, row.classroom_id), now)
