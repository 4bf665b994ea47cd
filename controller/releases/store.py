"""Agent releases, rings and rollouts in the database (staged agent updates).

Every function takes a Session and commits what it changes; the planner
(``controller.releases.planner``) decides, this module reads its inputs and applies it.
"""

from __future__ import annotations

import logging
import pathlib
from collections import defaultdict
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import (
    AgentRelease,
    Classroom,
    Lesson,
    LessonReceiver,
    ReleaseRing,
    ReleaseRollout,
    ReleaseTarget,
)
from controller.db.session import as_utc, utcnow
from controller.lessons.states import ACTIVE_STATES
from controller.releases.planner import Busy, Target, Window, may_offer, plan, ring_of
from protocols.releases import (
    MAX_WHEEL_BYTES,
    RINGS,
    ReleaseSignatureError,
    UpdateOffer,
    UpdateReport,
    key_id,
    load_public_key,
    sha256_hex,
    verify,
    wheel_version,
)

log = logging.getLogger(__name__)

OPEN_STATES = ("running", "paused")
KEYS_DIR = "release-keys"  # in the controller's state directory: *.pem public keys
# An offered agent downloads, installs and restarts before its own health deadline
# starts; the controller waits that long more before it counts the agent as silent (the
# agent's own rollback report, sent at its deadline, then arrives first).
INSTALL_GRACE_S = 300


def trusted_keys(state_dir: pathlib.Path) -> list[Ed25519PublicKey]:
    """The release public keys the controller accepts releases signed with."""
    folder = state_dir / KEYS_DIR
    if not folder.is_dir():
        return []
    return [load_public_key(p.read_bytes(), str(p)) for p in sorted(folder.glob("*.pem"))]


def add_release(
    db: Session,
    filename: str,
    wheel: bytes,
    signature: str,
    keys: list[Ed25519PublicKey],
    added_by: str,
    notes: str = "",
) -> AgentRelease:
    """Store a release after checking its signature with one of ``keys``."""
    version = wheel_version(filename)
    if not wheel or len(wheel) > MAX_WHEEL_BYTES:
        raise InvalidRequest(f"{filename}: {len(wheel)} bytes; a wheel has 1..{MAX_WHEEL_BYTES}")
    if not keys:
        raise InvalidRequest(
            f"no release public key: put the release key's public half (PEM) in "
            f"<state-dir>/{KEYS_DIR}/ with 'classroom-controller release trust-key FILE'"
        )
    digest = sha256_hex(wheel)
    problems = []
    for key in keys:
        try:
            verify(key, filename, digest, signature)
            break
        except ReleaseSignatureError as err:
            problems.append(str(err))
    else:
        raise InvalidRequest("; ".join(problems))
    if db.get(AgentRelease, version) is not None:
        raise InvalidRequest(f"release {version} is already held; versions are never replaced")
    row = AgentRelease(
        version=version,
        filename=filename,
        sha256=digest,
        size=len(wheel),
        wheel=wheel,
        signature=signature.strip(),
        key_id=key_id(key),
        notes=notes,
        added_by=added_by,
        added_at=utcnow(),
    )
    db.add(row)
    db.commit()
    return row


def set_ring(db: Session, scope: str, scope_id: str, ring: str, by: str) -> None:
    """Put a school or a classroom in a ring; ring '' removes the assignment."""
    if scope not in ("school", "classroom"):
        raise InvalidRequest(f"scope {scope!r}: use 'school' or 'classroom'")
    if ring and ring not in RINGS:
        raise InvalidRequest(f"ring {ring!r}: use one of {', '.join(RINGS)}")
    if scope == "classroom" and db.get(Classroom, scope_id) is None:
        raise NotFound(f"no classroom {scope_id!r}")
    school_room = select(Classroom.id).where(Classroom.school == scope_id).limit(1)
    if scope == "school" and db.scalar(school_room) is None:
        raise NotFound(f"no classroom of school {scope_id!r}")
    row = db.get(ReleaseRing, (scope, scope_id))
    if not ring:
        if row is not None:
            db.delete(row)
    elif row is None:
        db.add(ReleaseRing(scope=scope, scope_id=scope_id, ring=ring, set_by=by, set_at=utcnow()))
    else:
        row.ring, row.set_by, row.set_at = ring, by, utcnow()
    db.commit()


def ring_map(db: Session) -> dict[tuple[str, str], str]:
    """Every ring assignment: (scope, id) → ring."""
    return {(r.scope, r.scope_id): r.ring for r in db.scalars(select(ReleaseRing))}


def open_rollout(db: Session) -> ReleaseRollout | None:
    """The rollout running or paused, if any (there is at most one)."""
    return db.scalars(
        select(ReleaseRollout).where(ReleaseRollout.state.in_(OPEN_STATES)).limit(1)
    ).first()


def start_rollout(
    db: Session, version: str, window: Window, health_deadline_s: int, by: str
) -> ReleaseRollout:
    """Start rolling ``version`` out to every enrolled classroom, ring by ring."""
    if db.get(AgentRelease, version) is None:
        raise NotFound(f"no release {version!r}; add it with 'classroom-controller release add'")
    if not 10 <= health_deadline_s <= 86400:
        raise InvalidRequest(f"health deadline {health_deadline_s} s: use 10..86400")
    current = open_rollout(db)
    if current is not None:
        raise InvalidRequest(
            f"rollout {current.id} of {current.version} is {current.state}; finish or cancel it "
            "first"
        )
    rooms = db.scalars(select(Classroom).where(Classroom.public_key.is_not(None))).all()
    if not rooms:
        raise InvalidRequest("no enrolled classroom to update")
    rings = ring_map(db)
    now = utcnow()
    assigned = {r.id: ring_of(r.id, r.school, rings) for r in rooms}
    first = next(ring for ring in RINGS if ring in assigned.values())
    rollout = ReleaseRollout(
        version=version,
        state="running",
        ring=first,
        window_start=window.start,
        window_end=window.end,
        timezone=window.timezone,
        health_deadline_s=health_deadline_s,
        paused_reason="",
        started_by=by,
        started_at=now,
        updated_at=now,
    )
    db.add(rollout)
    db.flush()
    for room in rooms:
        done = room.agent_version == version
        db.add(
            ReleaseTarget(
                rollout_id=rollout.id,
                classroom_id=room.id,
                ring=assigned[room.id],
                state="healthy" if done else "pending",
                from_version=room.agent_version,
                detail="already on this version" if done else "",
                updated_at=now,
            )
        )
    db.commit()
    return rollout


def _rollout(db: Session, rollout_id: int | None) -> ReleaseRollout:
    row = db.get(ReleaseRollout, rollout_id) if rollout_id is not None else open_rollout(db)
    if row is None:
        raise NotFound(
            f"no rollout {rollout_id}" if rollout_id is not None else "no rollout running"
        )
    return row


def pause(db: Session, rollout_id: int | None, reason: str) -> ReleaseRollout:
    """Pause a running rollout; offers already made stand, no new ones are made."""
    row = _rollout(db, rollout_id)
    if row.state != "running":
        raise InvalidRequest(f"rollout {row.id} is {row.state}, not running")
    row.state, row.paused_reason, row.updated_at = "paused", reason, utcnow()
    db.commit()
    return row


def resume(db: Session, rollout_id: int | None) -> ReleaseRollout:
    """Resume a paused rollout; classrooms of its ring that failed are offered again."""
    row = _rollout(db, rollout_id)
    if row.state != "paused":
        raise InvalidRequest(f"rollout {row.id} is {row.state}, not paused")
    now = utcnow()
    for t in db.scalars(select(ReleaseTarget).where(ReleaseTarget.rollout_id == row.id)):
        if t.ring == row.ring and t.state in ("failed", "rolled_back", "offered", "installing"):
            t.state, t.offered_at, t.updated_at = "pending", None, now
    row.state, row.paused_reason, row.updated_at = "running", "", now
    db.commit()
    return row


def cancel(db: Session, rollout_id: int | None) -> ReleaseRollout:
    """Stop a rollout for good (classrooms already updated stay on the release)."""
    row = _rollout(db, rollout_id)
    if row.state not in OPEN_STATES:
        raise InvalidRequest(f"rollout {row.id} is {row.state} already")
    row.state, row.updated_at, row.finished_at = "cancelled", utcnow(), utcnow()
    db.commit()
    return row


def busy_map(db: Session, classroom_ids: list[str], now: datetime) -> dict[str, list[Busy]]:
    """The lessons holding each classroom from now until a day ahead."""
    out: dict[str, list[Busy]] = defaultdict(list)
    if not classroom_ids:
        return out
    ids = set(classroom_ids)
    lessons = db.scalars(
        select(Lesson)
        .outerjoin(LessonReceiver, LessonReceiver.lesson_id == Lesson.id)
        .where(
            Lesson.state.in_([s.value for s in ACTIVE_STATES]),
            Lesson.end_at > now,
            Lesson.start_at < now + timedelta(days=1),
            or_(Lesson.lead_classroom_id.in_(ids), LessonReceiver.classroom_id.in_(ids)),
        )
    ).unique()
    for lesson in lessons:
        for room in lesson.classroom_ids:
            if room in ids:
                out[room].append(Busy(as_utc(lesson.start_at), as_utc(lesson.end_at), lesson.id))
    return out


def _targets(db: Session, rollout_id: int) -> list[ReleaseTarget]:
    return list(
        db.scalars(
            select(ReleaseTarget)
            .where(ReleaseTarget.rollout_id == rollout_id)
            .order_by(ReleaseTarget.classroom_id)
        )
    )


def _window(row: ReleaseRollout) -> Window:
    return Window(row.window_start, row.window_end, row.timezone)


def tick(db: Session, online: list[str], now: datetime | None = None) -> dict[str, object]:
    """One step of the open rollout (see the planner); returns what changed."""
    now = now or utcnow()
    row = open_rollout(db)
    if row is None or row.state != "running":
        return {}
    rows = _targets(db, row.id)
    targets = [
        Target(
            t.classroom_id,
            t.ring,
            t.state,
            as_utc(t.offered_at) if t.offered_at else None,
            t.detail,
        )
        for t in rows
    ]
    ring_ids = [t.classroom_id for t in rows if t.ring == row.ring]
    step = plan(
        row.ring,
        targets,
        _window(row),
        busy_map(db, ring_ids, now),
        set(online),
        now,
        timedelta(seconds=row.health_deadline_s + INSTALL_GRACE_S),
    )
    by_id = {t.classroom_id: t for t in rows}
    for c in step.offer:
        by_id[c].state, by_id[c].offered_at, by_id[c].updated_at = "offered", now, now
    for c in step.timed_out:
        by_id[c].state, by_id[c].updated_at = "failed", now
        by_id[
            c
        ].detail = (
            f"no healthy report within {row.health_deadline_s + INSTALL_GRACE_S} s of the offer"
        )
    if step.pause_reason:
        row.state, row.paused_reason = "paused", step.pause_reason
        log.warning("rollout %d of %s paused: %s", row.id, row.version, step.pause_reason)
    elif step.next_ring:
        log.info("rollout %d of %s: ring %s healthy", row.id, row.version, row.ring)
        row.ring = step.next_ring
    elif step.done:
        row.state, row.finished_at = "done", now
        log.info("rollout %d of %s done: every ring healthy", row.id, row.version)
    if step.offer or step.timed_out or step.pause_reason or step.next_ring or step.done:
        row.updated_at = now
    db.commit()
    return {
        "offered": step.offer,
        "timed_out": step.timed_out,
        "paused": step.pause_reason,
        "next_ring": step.next_ring,
        "done": step.done,
        "waiting": step.waiting,
    }


def offer_for(
    db: Session, classroom_id: str, online: list[str], now: datetime | None = None
) -> UpdateOffer | None:
    """The release this classroom should install now, if any: offered to it by the open
    rollout, and (checked again at the agent's ask) inside the window and between lessons."""
    now = now or utcnow()
    row = open_rollout(db)
    if row is None or row.state != "running":
        return None
    target = db.get(ReleaseTarget, (row.id, classroom_id))
    # installing: it fetched the offer before (an install it could not finish or switch).
    if target is None or target.state not in ("offered", "installing"):
        return None
    why = may_offer(classroom_id, _window(row), busy_map(db, [classroom_id], now), set(online), now)
    if why:
        return None
    release = db.get(AgentRelease, row.version)
    assert release is not None  # a foreign key
    return UpdateOffer(
        rollout_id=row.id,
        version=release.version,
        filename=release.filename,
        sha256=release.sha256,
        size=release.size,
        signature=release.signature,
        key_id=release.key_id,
        health_deadline_s=row.health_deadline_s,
    )


def wheel_for(db: Session, classroom_id: str, version: str) -> AgentRelease:
    """A release's wheel, for a classroom that has been offered it."""
    offered = db.scalar(
        select(ReleaseTarget.rollout_id)
        .join(ReleaseRollout, ReleaseRollout.id == ReleaseTarget.rollout_id)
        .where(
            ReleaseTarget.classroom_id == classroom_id,
            ReleaseRollout.version == version,
            ReleaseTarget.state.in_(("offered", "installing")),
        )
    )
    release = db.get(AgentRelease, version)
    if offered is None or release is None:
        raise NotFound(f"release {version!r} is not offered to classroom {classroom_id!r}")
    return release


def record_report(db: Session, classroom_id: str, report: UpdateReport) -> None:
    """An agent's progress on the rollout that offered it a release."""
    row = db.get(ReleaseRollout, report.rollout_id)
    target = db.get(ReleaseTarget, (report.rollout_id, classroom_id))
    if row is None or target is None:
        raise NotFound(f"classroom {classroom_id!r} is not in rollout {report.rollout_id}")
    if report.version != row.version:
        raise InvalidRequest(
            f"rollout {row.id} rolls out {row.version}, the report is about {report.version}"
        )
    state = report.state
    if state == "healthy" and report.running_version != row.version:
        state, detail = "failed", f"reported healthy while running {report.running_version}"
    else:
        detail = report.detail
    if state == "healthy" and not all(report.checks.values()):
        state, detail = "failed", f"reported healthy with failing checks {report.checks}"
    now = utcnow()
    target.state, target.detail, target.updated_at = state, detail[:4000], now
    log.info("rollout %d: %s %s on %s (%s)", row.id, classroom_id, state, row.version, detail)
    if state in ("failed", "rolled_back") and row.state == "running":
        row.state = "paused"
        what = state.replace("_", " ")
        row.paused_reason = f"ring {target.ring}: {classroom_id} {what}: {detail}"
        row.updated_at = now
        log.warning("rollout %d of %s paused: %s", row.id, row.version, row.paused_reason)
    db.commit()


def status(db: Session) -> dict[str, object]:
    """Releases, ring assignments and the latest rollouts with each classroom's progress."""
    releases = db.scalars(select(AgentRelease).order_by(AgentRelease.added_at.desc())).all()
    rollouts = db.scalars(select(ReleaseRollout).order_by(ReleaseRollout.id.desc()).limit(5)).all()
    return {
        "releases": [
            {
                "version": r.version,
                "filename": r.filename,
                "sha256": r.sha256,
                "size": r.size,
                "key_id": r.key_id,
                "notes": r.notes,
                "added_by": r.added_by,
                "added_at": as_utc(r.added_at).isoformat(),
            }
            for r in releases
        ],
        "rings": [
            {"scope": s, "id": i, "ring": ring} for (s, i), ring in sorted(ring_map(db).items())
        ],
        "rollouts": [
            {
                "id": r.id,
                "version": r.version,
                "state": r.state,
                "ring": r.ring,
                "window": str(_window(r)),
                "health_deadline_s": r.health_deadline_s,
                "paused_reason": r.paused_reason,
                "started_by": r.started_by,
                "started_at": as_utc(r.started_at).isoformat(),
                "finished_at": as_utc(r.finished_at).isoformat() if r.finished_at else None,
                "targets": [
                    {
                        "classroom": t.classroom_id,
                        "ring": t.ring,
                        "state": t.state,
                        "from_version": t.from_version,
                        "detail": t.detail,
                    }
                    for t in _targets(db, r.id)
                ],
            }
            for r in rollouts
        ],
    }
