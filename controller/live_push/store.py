"""A lesson's live push targets in the database, checked, and shown without their keys.

The targets are the scheduler's: a DingTalk or WeChat live room, a county platform, up to
``MAX_TARGETS`` of them. Their addresses carry the platforms' stream keys, which are
secrets: they leave the controller only in the lead's ``JoinLesson``. Every view (the API,
the console, the lesson's events) shows the redacted address.

How each push is doing comes from the lead classroom's heartbeat (``pushes``), matched to
the lesson by id and to a target by its name.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, WrongState
from controller.db.models import Classroom, Lesson, LessonPushTargets
from controller.db.session import utcnow
from controller.lessons.scheduling import log_event
from controller.lessons.watch import touched
from protocols.live_push import MAX_TARGETS, redact
from protocols.messages import PushTarget

# A lesson's targets may change until it is over; a change while it is live reaches the
# lead at once (the orchestrator sends it new terms).
CHANGEABLE = ("scheduled", "preparing", "live")
EXAMPLE = '{"targets": [{"name": "钉钉直播", "url": "rtmp://push.example.com/live/KEY"}]}'


def push_targets(db: Session, lesson_id: str) -> list[PushTarget]:
    """The lesson's targets, in the scheduler's order (none set: empty)."""
    row = db.get(LessonPushTargets, lesson_id)
    if row is None:
        return []
    return [PushTarget.model_validate(t) for t in row.targets]


def parse_targets(raw: bytes, stored: list[PushTarget]) -> list[PushTarget]:
    """The targets of a PUT body, or ``InvalidRequest`` naming what is wrong and where.

    The addresses are never shown back, so a target sent by name alone (no ``url``) keeps
    the address stored under that name: a scheduler reorders, renames nothing and drops
    a platform without typing every stream key again."""
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON ({err}); send {EXAMPLE}") from None
    if not isinstance(body, dict) or set(body) != {"targets"}:
        raise InvalidRequest(f'body must be an object with one field, "targets": {EXAMPLE}')
    items = body["targets"]
    if not isinstance(items, list):
        raise InvalidRequest(f'"targets" must be a list (empty: no live push); {EXAMPLE}')
    if len(items) > MAX_TARGETS:
        raise InvalidRequest(
            f"{len(items)} push targets; a lesson pushes to at most {MAX_TARGETS} (each is a "
            "connection and an audio encoder on the lead classroom's PC)"
        )
    out: list[PushTarget] = []
    for i, item in enumerate(items):
        unknown = sorted(set(item) - {"name", "url"}) if isinstance(item, dict) else []
        if unknown:
            raise InvalidRequest(
                f"targets[{i}]: unknown field(s) {', '.join(unknown)}; a target has 'name' "
                "and 'url'"
            )
        if isinstance(item, dict) and "url" not in item and "name" in item:
            known = next((t for t in stored if t.name == item["name"]), None)
            if known is None:
                raise InvalidRequest(
                    f"targets[{i}].url is missing and the lesson has no target named "
                    f"{item['name']!r} to keep; give the push address the live platform gave, "
                    "rtmp://host/app/stream-key"
                )
            item = {"name": known.name, "url": known.url}
        try:
            target = PushTarget.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "item"
            hint = (
                "the push address the live platform gave, rtmp://host/app/stream-key"
                if field == "url"
                else "a name of 1 to 40 characters people know the platform by"
                if field == "name"
                else 'an object {"name": ..., "url": ...}'
            )
            raise InvalidRequest(f"targets[{i}].{field}: {first['msg']}; expected {hint}") from None
        if any(t.name == target.name for t in out):
            raise InvalidRequest(f"targets[{i}].name: {target.name!r} is used twice; names differ")
        out.append(target)
    return out


def set_push_targets(
    db: Session, lesson: Lesson, targets: list[PushTarget], by: str
) -> list[PushTarget]:
    """Replace the lesson's targets (``WrongState`` once it is over); logged redacted."""
    if lesson.state not in CHANGEABLE:
        raise WrongState(
            f"lesson {lesson.id} is {lesson.state}; live push targets can be changed until "
            "the lesson ends"
        )
    row = db.get(LessonPushTargets, lesson.id)
    if row is None:
        row = LessonPushTargets(lesson_id=lesson.id, changed_at=utcnow())
        db.add(row)
    row.targets = [t.model_dump() for t in targets]
    row.changed_by = by[:120]
    row.changed_at = utcnow()
    touched(db, {lesson.lead_classroom_id})  # the lead's schedule and terms change
    shown = ", ".join(f"{t.name} ({redact(t.url)})" for t in targets) or "none"
    log_event(db, lesson.id, f"live push targets set by {by}: {shown}")
    db.commit()
    return targets


def push_document(db: Session, lesson: Lesson) -> dict[str, Any]:
    """The lesson's targets, redacted, each with its push's state from the lead's
    heartbeat (``unknown`` when the lead has not reported it)."""
    lead = db.get(Classroom, lesson.lead_classroom_id)
    health = lead.health if lead is not None and isinstance(lead.health, dict) else {}
    pushes = health.get("pushes")
    reported = {
        p.get("name"): p
        for p in (pushes if isinstance(pushes, list) else [])
        if isinstance(p, dict) and p.get("lesson_id") == lesson.id
    }
    row = db.get(LessonPushTargets, lesson.id)
    targets = []
    for t in push_targets(db, lesson.id):
        st = reported.get(t.name, {})
        targets.append(
            {
                "name": t.name,
                "where": redact(t.url),
                "state": st.get("state", "unknown"),
                "live_since": st.get("live_since"),
                "bytes": st.get("bytes", 0),
                "reconnects": st.get("reconnects", 0),
                "last_error": st.get("last_error", ""),
            }
        )
    return {
        "lesson_id": lesson.id,
        "lesson_state": lesson.state,
        "lead": lesson.lead_classroom_id,
        "targets": targets,
        "changed_by": row.changed_by if row is not None else "",
        "changeable": lesson.state in CHANGEABLE,
    }
