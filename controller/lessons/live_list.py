"""The live lessons as patrol lists them (``GET /api/v1/live``): each lesson's feeds with
their figures from the agents' heartbeats (and, on Janus, the room's listing), the
classrooms' QoS, and what a school-scoped account may see of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.auth.scope import Scope
from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc, utcnow
from controller.lessons.patrol_janus import Listing
from controller.relay.handle import RelayHandle

LIVE_STATES = ("preparing", "live")
TRACK_ORDER = {"teacher": 0, "student": 1, "panel": 2, "mic": 3}
UNAVAILABLE = {
    "media_latency_ms": "glass-to-glass latency is measured only after the lesson (its "
    "reports); rtt_ms is the publisher's RTCP round trip to the relay",
}
UNAVAILABLE_JANUS = {
    **UNAVAILABLE,
    "frames_in": "Janus forwards the feeds; the controller does not count their frames "
    "(fps and bitrate are the publishing agent's)",
    "frame_age_s": "Janus forwards the feeds; the controller sees no frame's arrival",
    "subscribers": "on Janus, the lesson's other online classrooms whose latest heartbeat "
    "reports receiving the feed; console viewers are counted in the lesson's viewers",
}


class Relays(Protocol):
    """What patrol needs from the orchestrator
    (``controller.lessons.orchestrator.Orchestrator``)."""

    runs: dict[str, Any]

    def relay_for(self, lesson_id: str) -> RelayHandle | None:
        """The relay of a lesson under way in this instance."""


def _age_s(at: datetime | None) -> float | None:
    return None if at is None else round((utcnow() - as_utc(at)).total_seconds(), 1)


def _room_qos(room: Classroom | None, online: set[str]) -> dict[str, Any]:
    """One classroom's figures from its agent's latest heartbeat (``Classroom.health``)."""
    if room is None:
        return {"online": False}
    health = room.health or {}
    return {
        "name": room.name,
        "school": room.school,
        "online": room.id in online,
        "heartbeat_age_s": _age_s(room.last_seen_at),
        "control_rtt_ms": health.get("rtt_ms"),
        "cpu_pct": health.get("cpu_pct"),
        "audio_level_dbfs": health.get("audio_level_dbfs"),
        "alerts": health.get("alerts", {}),
    }


def _media(room: Classroom | None, track: str, direction: str) -> dict[str, Any]:
    """The heartbeat's media entry (fps, bitrate_bps…) of one track, or {}."""
    entries = (room.health or {}).get("media", []) if room is not None else []
    for entry in entries if isinstance(entries, list) else []:
        if entry.get("track") == track and entry.get("direction") == direction:
            return dict(entry)
    return {}


def _janus_feeds(
    lesson: Lesson, listing: Listing, rooms: dict[str, Classroom], online: set[str]
) -> list[dict[str, Any]]:
    """A Janus lesson's feeds: the streams in its room, with the agents' figures. A feed's
    subscribers are the online rooms whose heartbeat says they receive it."""
    lead = lesson.lead_classroom_id
    mine = [s for s in listing.streams if s.classroom in lesson.classroom_ids]
    feeds = []
    for st in sorted(
        mine,
        key=lambda f: (f.classroom != lead, f.classroom, TRACK_ORDER.get(f.track, 9), f.track),
    ):
        sent = _media(rooms.get(st.classroom), st.track, "send")
        received = [
            (c, _media(rooms.get(c), f"{st.classroom}-{st.track}", "recv"))
            for c in lesson.classroom_ids
            if c != st.classroom
        ]
        losses = [sent.get("loss_pct")] + [r.get("loss_pct") for _, r in received]
        known = [x for x in losses if isinstance(x, int | float)]
        feeds.append(
            {
                "classroom": st.classroom,
                "track": st.track,
                "kind": st.kind,
                "fps": sent.get("fps"),
                "bitrate_bps": sent.get("bitrate_bps"),
                "loss_pct": max(known) if known else None,
                "rtt_ms": sent.get("rtt_ms"),
                "frames_in": None,
                "subscribers": sum(
                    1 for c, r in received if c in online and (r.get("fps") or r.get("bitrate_bps"))
                ),
                "frame_age_s": None,
                # A publisher whose camera reports no frames is frozen for the viewer too.
                "frozen_s": 0.0 if sent.get("fps") or st.kind != "video" else None,
            }
        )
    return feeds


def _lesson_head(
    lesson: Lesson, backend: str, rooms: dict[str, Classroom], online: set[str]
) -> dict[str, Any]:
    """What every backend's entry says of a lesson: who, when, and each room's QoS."""
    lead = lesson.lead_classroom_id
    return {
        "id": lesson.id,
        "state": lesson.state,
        "kind": lesson.kind,
        "backend": backend,
        "lead": lead,
        "receivers": [c for c in lesson.classroom_ids if c != lead],
        "start_at": as_utc(lesson.start_at).isoformat(),
        "end_at": as_utc(lesson.end_at).isoformat(),
        "classrooms": {c: _room_qos(rooms.get(c), online) for c in lesson.classroom_ids},
    }


def live_document(
    db: Session,
    relays: Relays | None,
    online: set[str],
    janus: dict[str, Listing] | None = None,
    janus_viewers: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Every lesson this controller carries now (on its relay or in a Janus room), with
    its feeds and their QoS."""
    if relays is None:
        return []
    ids = list(relays.runs)
    if not ids:
        return []
    lessons = db.scalars(
        select(Lesson).where(Lesson.id.in_(ids), Lesson.state.in_(LIVE_STATES))
    ).all()
    rooms_needed = {c for x in lessons for c in x.classroom_ids}
    rooms = {r.id: r for r in db.scalars(select(Classroom).where(Classroom.id.in_(rooms_needed)))}
    out = []
    for lesson in sorted(lessons, key=lambda x: (as_utc(x.start_at), x.id)):
        lead = lesson.lead_classroom_id
        listing = (janus or {}).get(lesson.id)
        if listing is not None:
            doc = {
                **_lesson_head(lesson, "janus", rooms, online),
                "feeds": _janus_feeds(lesson, listing, rooms, online),
                "viewers": (janus_viewers or {}).get(lesson.id, 0),
                "unavailable": UNAVAILABLE_JANUS,
            }
            if listing.error:
                doc["media_plane_error"] = listing.error
            out.append(doc)
            continue
        relay = relays.relay_for(lesson.id)
        if relay is None:
            continue
        feeds = []
        for feed in sorted(
            relay.feeds,
            key=lambda f: (
                f.source_classroom != lead,
                f.source_classroom,
                TRACK_ORDER.get(f.track, 9),
                f.track,
            ),
        ):
            sent = _media(rooms.get(feed.source_classroom), feed.track, "send")
            age = relay.frame_age_s(feed.source_classroom, feed.track)
            # Loss: the worst of the publisher's uplink and each receiver's downlink.
            losses = [sent.get("loss_pct")] + [
                _media(rooms.get(c), f"{feed.source_classroom}-{feed.track}", "recv").get(
                    "loss_pct"
                )
                for c in lesson.classroom_ids
                if c != feed.source_classroom
            ]
            known = [x for x in losses if isinstance(x, int | float)]
            feeds.append(
                {
                    "classroom": feed.source_classroom,
                    "track": feed.track,
                    "kind": feed.kind,
                    "fps": sent.get("fps"),
                    "bitrate_bps": sent.get("bitrate_bps"),
                    "loss_pct": max(known) if known else None,
                    "rtt_ms": sent.get("rtt_ms"),
                    "frames_in": feed.frames_in,
                    "subscribers": feed.subscribers,
                    "frame_age_s": None if age is None else round(age, 2),
                    # A video feed with no frame for over a second is frozen.
                    "frozen_s": round(age, 1) if age is not None and age > 1.0 else 0.0,
                }
            )
        out.append(
            {
                **_lesson_head(lesson, "builtin", rooms, online),
                "feeds": feeds,
                "viewers": len(relay.viewers),
                "unavailable": UNAVAILABLE,
            }
        )
    return out


def scoped_live(db: Session, scope: Scope, lessons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live lessons a scope sees: those with one of its classrooms, showing only the
    feeds and classroom figures of its own classrooms."""
    rooms = scope.classroom_ids(db)
    if rooms is None:
        return lessons
    out = []
    for lesson in lessons:
        if lesson["lead"] not in rooms and not rooms.intersection(lesson["receivers"]):
            continue
        out.append(
            {
                **lesson,
                "feeds": [f for f in lesson["feeds"] if f["classroom"] in rooms],
                "classrooms": {c: q for c, q in lesson["classrooms"].items() if c in rooms},
            }
        )
    return out
