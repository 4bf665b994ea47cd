"""The orchestrator places lessons on real Janus instances: the placement in every join,
a lesson moved when its instance dies, its room destroyed at its end, and a lesson that
nothing fits put on the built-in relay or recorded locally, with an alert either way.

Placements survive: a restarted controller adopts its lessons' rooms and sweeps away the
rooms no lesson owns; a lesson with a release-0.5 agent stays whole on the built-in relay;
and a stopped (SIGSTOP) instance holds up only the lesson being placed on it."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from media_plane_fixtures import StartJanus, instance, plane_config
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.presence import Presence
from controller.agents.registry import add_classroom
from controller.db.models import Classroom, Lesson, LessonEvent, LessonMediaRoom
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.media_rooms import NO_LIVE_MEDIA
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.scheduling import schedule_lesson
from controller.media_plane.plane import MediaPlane
from controller.media_plane.room_keys import room_secret
from protocols import envelope
from protocols.messages import Body, CommandAck, JoinLesson, StartRecording

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]
INVENTORY = {
    "lead": [
        {"name": "teacher", "kind": "camera", "role": "teacher", "width": 1280, "height": 720},
        {"name": "mic", "kind": "microphone", "role": "room"},
    ],
    "recv": [
        {"name": "student", "kind": "camera", "role": "student", "width": 640, "height": 360},
        {"name": "mic", "kind": "microphone", "role": "room"},
    ],
}
INVENTORY["lead2"], INVENTORY["recv2"] = INVENTORY["lead"], INVENTORY["recv"]


class FakeHub:
    """Records commands and acknowledges them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Body]] = []

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Any:
        self.sent.append((classroom_id, body))
        return envelope.make(CommandAck(command=body.TYPE, ok=True), classroom_id)

    async def send(self, classroom_id: str, body: Body) -> str:
        return "id"

    def joins(self) -> list[tuple[str, JoinLesson]]:
        return [(c, b) for c, b in self.sent if isinstance(b, JoinLesson)]


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    migrate(db_url)
    factory = sessions(make_engine(db_url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, inventory in INVENTORY.items():
            add_classroom(s, cid, cid, "", keys.public)
            s.get(Classroom, cid).inventory = inventory  # type: ignore[union-attr]
        s.commit()
    return factory


@pytest.fixture
async def planes() -> AsyncIterator[Callable[..., MediaPlane]]:
    made: list[MediaPlane] = []

    def make(instances: dict[str, dict[str, Any]], **settings: Any) -> MediaPlane:
        plane = MediaPlane(plane_config(instances, **settings))
        made.append(plane)
        return plane

    yield make
    for plane in made:
        await plane.stop()


async def _wait(what: str, check: Callable[[], object], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _events(db: sessionmaker[Session], lesson_id: str) -> list[str]:
    with db() as s:
        rows = s.scalars(select(LessonEvent).where(LessonEvent.lesson_id == lesson_id)).all()
        return [r.detail for r in rows]


def _state(db: sessionmaker[Session], lesson_id: str) -> str:
    with db() as s:
        row = s.get(Lesson, lesson_id)
        assert row is not None
        return row.state


async def _lesson(db: sessionmaker[Session], orch: Orchestrator, presence: Presence) -> str:
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
        )
    presence.registered("lead", None)
    presence.registered("recv", None)
    await _settle(db, orch, lesson.id)
    return lesson.id


async def _settle(
    db: sessionmaker[Session], orch: Orchestrator, lesson_id: str, timeout: float = 10.0
) -> None:
    """Passes until the lesson's placement is decided (a task of its own) and it prepares."""
    for _ in range(int(timeout / 0.05)):
        await orch.tick()
        await asyncio.sleep(0.05)
        if _state(db, lesson_id) != "scheduled":
            return
    raise AssertionError(f"lesson {lesson_id} still scheduled after {timeout} s")


async def test_joins_carry_the_room_which_follows_a_killed_instance_and_is_destroyed_at_the_end(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    servers = {"county-a": await start_janus(), "county-b": await start_janus()}
    plane = planes({n: instance(s) for n, s in servers.items()})
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, leave_grace_s=0.0, media=plane)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    joins = hub.joins()
    assert {c for c, _ in joins} == {"lead", "recv"}
    first = joins[0][1].media
    assert first is not None and first.instance in servers and first.pin
    assert all(j.media == first for _, j in joins)  # one room for the whole lesson
    assert "secret" not in joins[0][1].model_dump_json()  # the room's secret stays here
    assert await plane.rooms.exists(lesson_id)
    assert any(e.startswith(f"media plane: room {first.room} on") for e in _events(db, lesson_id))
    # The agents' cached schedule never holds a placement: it outlives no room.
    with db() as s:
        assert all(j.media is None for j in orch.schedule_for(s, "lead"))

    servers[first.instance].kill()
    await _wait("joins with the new room", lambda: len(hub.joins()) >= 4)
    moved = hub.joins()[2:]
    assert {c for c, _ in moved} == {"lead", "recv"}
    second = moved[0][1].media
    assert second is not None and second.instance != first.instance
    assert any(
        e.startswith("ALERT") and f"{first.instance} is down" in e for e in _events(db, lesson_id)
    )

    with db() as s:  # the lesson ends and both rooms report
        row = s.get(Lesson, lesson_id)
        assert row is not None
        row.start_at = utcnow() - timedelta(seconds=2)
        row.end_at = utcnow() - timedelta(seconds=1)
        s.commit()
    for _ in range(3):
        await orch.tick()
        await asyncio.sleep(0.05)
    with db() as s:
        row = s.get(Lesson, lesson_id)
        assert row is not None and row.state == "ending"
        row.reports = {"lead": [], "recv": []}
        s.commit()
    await orch.tick()
    assert _state(db, lesson_id) == "recorded"
    assert not await plane.rooms.exists(lesson_id)
    rooms = await plane.clients[second.instance].videoroom({"request": "list"})
    assert [r for r in rooms.get("list") or [] if r.get("room") == second.room] == []
    assert any(e.endswith("destroyed") for e in _events(db, lesson_id))
    await orch.stop()


@pytest.mark.parametrize("fallback", [True, False])
async def test_a_lesson_nothing_fits_falls_back_or_records_locally_with_an_alert(
    db: sessionmaker[Session],
    start_janus: StartJanus,
    planes: Callable[..., MediaPlane],
    fallback: bool,
) -> None:
    server = await start_janus()
    plane = planes({"county-a": instance(server)}, fallback_to_builtin=fallback)
    server.kill()  # down before the controller looks
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    events = _events(db, lesson_id)
    # Either way the lesson is not lost: its agents are joined, and told to record.
    assert _state(db, lesson_id) == "preparing"
    assert {c for c, _ in hub.joins()} == {"lead", "recv"}
    assert all(j.media is None for _, j in hub.joins())
    assert orch.media is not None
    if fallback:
        alert = next(e for e in events if e.startswith("ALERT media plane: on the built-in"))
        assert orch.media.no_live_media(lesson_id) is None
    else:
        alert = next(e for e in events if e.startswith("ALERT media plane: live media unavail"))
        assert "record locally" in alert
        assert "county-a down" in (orch.media.no_live_media(lesson_id) or "")
    assert "county-a down" in alert
    await orch.stop()


async def test_an_instance_down_at_lesson_start_puts_it_on_another_with_an_alert(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    up, down = await start_janus(), await start_janus()
    plane = planes({"county-a": instance(down), "county-b": instance(up)})
    down.kill()
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    assert _state(db, lesson_id) == "preparing"
    assert {j.media.instance for _, j in hub.joins() if j.media is not None} == {"county-b"}
    assert len(hub.joins()) == 2
    placed = next(e for e in _events(db, lesson_id) if "on Janus instance" in e)
    assert placed.startswith("ALERT media plane: room") and "county-a down" in placed, placed
    await orch.stop()


async def _rooms(plane: MediaPlane, name: str) -> dict[int, str]:
    listing = await plane.clients[name].videoroom({"request": "list"})
    return {int(r["room"]): str(r.get("description", "")) for r in listing.get("list") or []}


async def test_a_restarted_controller_keeps_the_rooms_of_lessons_under_way_and_sweeps_the_rest(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    config = {"county-a": instance(server)}
    first = planes(config)
    await first.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=first)  # type: ignore[arg-type]
    under_way = await _lesson(db, orch, presence)
    placed = hub.joins()[0][1].media
    assert placed is not None
    now = utcnow()
    with db() as s:  # a second lesson, placed and then over while the controller was away
        over = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(hours=2), now + timedelta(hours=3)
        ).id
        row = s.get(Lesson, over)
        assert row is not None
        row.start_at = now + timedelta(seconds=1)
        s.commit()
    await _settle(db, orch, over)
    assert orch.media is not None
    ended = orch.media.placement(over)
    assert ended is not None
    with db() as s:
        row = s.get(Lesson, over)
        assert row is not None
        row.state = "recorded"
        s.commit()
    # A room made just before a kill, never written down: no lesson owns it.
    inst = first.config.instance("county-a")
    stray = 4242
    await first.clients["county-a"].videoroom(
        {
            "request": "create",
            "room": stray,
            "secret": room_secret(inst, stray),
            "description": "classbridge lesson gone",
            "is_private": False,
        }
    )
    # What is stored names the room, and holds neither its secret nor its PIN.
    with db() as s:
        stored = s.get(LessonMediaRoom, under_way)
        assert stored is not None and (stored.instance, stored.room) == ("county-a", placed.room)
        dumped = repr(
            [(r.lesson_id, r.instance, r.room) for r in s.scalars(select(LessonMediaRoom))]
        )
    assert placed.pin not in dumped and room_secret(inst, placed.room) not in dumped

    # SIGKILLed: nothing closed. A new controller (or leader) starts on the same database.
    second = planes(config)
    await second.start()
    hub2 = FakeHub()
    orch2 = Orchestrator(db, hub2, presence, media=second)  # type: ignore[arg-type]
    await orch2.start()
    await _wait("the agents joined again", lambda: len(hub2.joins()) >= 2)
    assert {c for c, j in hub2.joins() if j.lesson_id == under_way} == {"lead", "recv"}
    assert all(j.media == placed for _, j in hub2.joins())  # the same room, same PIN
    assert any("kept from before the controller restarted" in e for e in _events(db, under_way))
    rooms = await _rooms(second, "county-a")
    assert placed.room in rooms
    assert ended.room not in rooms and stray not in rooms  # swept
    with db() as s:
        assert s.get(LessonMediaRoom, over) is None
    await orch2.stop()
    # Stopping keeps the room for whoever orchestrates next.
    assert placed.room in await _rooms(second, "county-a")


async def test_a_stored_room_gone_from_its_instance_is_placed_anew(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    first = planes({"county-a": instance(server)})
    await first.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=first)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    old = hub.joins()[0][1].media
    assert old is not None
    await first.rooms.close(lesson_id)  # gone (Janus restarted, say)
    second = planes({"county-a": instance(server)})
    await second.start()
    hub2 = FakeHub()
    orch2 = Orchestrator(db, hub2, presence, media=second)  # type: ignore[arg-type]
    await orch2.start()
    await _wait("the agents joined again", lambda: len(hub2.joins()) >= 2)
    new = hub2.joins()[0][1].media
    assert new is not None and new.room != old.room
    with db() as s:
        stored = s.get(LessonMediaRoom, lesson_id)
        assert stored is not None and stored.room == new.room
    await orch2.stop()


async def test_a_lesson_with_a_release_05_agent_runs_whole_on_the_built_in_relay(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    plane = planes({"county-a": instance(server)})
    await plane.start()
    with db() as s:
        room = s.get(Classroom, "recv")
        assert room is not None
        room.protocol_minor, room.agent_version = 5, "0.5.2"
        s.commit()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    assert {c for c, _ in hub.joins()} == {"lead", "recv"}
    assert all(j.media is None for _, j in hub.joins())  # nobody sent to Janus
    assert await _rooms(plane, "county-a") == {}
    alert = next(e for e in _events(db, lesson_id) if e.startswith("ALERT media plane"))
    assert "built-in relay" in alert and "recv" in alert and "0.5.2" in alert, alert
    assert "lead" not in alert.split("cannot use Janus:")[1]
    await orch.stop()


class NackHub(FakeHub):
    """Answers a join as an agent does whose offer the relay refused (no live media)."""

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Any:
        self.sent.append((classroom_id, body))
        if isinstance(body, JoinLesson) and body.media is None:
            error = f"ConnectionError: controller refused rtc.offer: {NO_LIVE_MEDIA} (why)"
            return envelope.make(CommandAck(command=body.TYPE, ok=False, error=error), "x")
        return envelope.make(CommandAck(command=body.TYPE, ok=True), classroom_id)


async def test_a_lesson_nothing_fits_is_recorded_by_its_agents_until_live_media_returns(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    plane = planes({"county-a": instance(server, capacity=1)}, fallback_to_builtin=False)
    await plane.start()
    await plane.clients["county-a"].videoroom(  # someone else's room fills the instance
        {"request": "create", "room": 77, "description": "another", "is_private": False}
    )
    await plane.watcher.poll_once()
    hub, presence = NackHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    lesson_id = await _lesson(db, orch, presence)
    alert = next(e for e in _events(db, lesson_id) if "live media unavailable" in e)
    assert alert.startswith("ALERT") and "county-a full (1 of 1 lessons)" in alert, alert
    with db() as s:  # the lesson starts: both agents are told to record
        row = s.get(Lesson, lesson_id)
        assert row is not None
        row.start_at = utcnow() - timedelta(seconds=1)
        s.commit()
    for _ in range(3):
        await orch.tick()
        await asyncio.sleep(0.05)
    assert _state(db, lesson_id) == "live"
    told = {c for c, b in hub.sent if isinstance(b, StartRecording)}
    assert told == {"lead", "recv"}
    # The other room goes: live media comes back, and the recording agents are told.
    await plane.clients["county-a"].videoroom({"request": "destroy", "room": 77})
    await plane.watcher.poll_once()
    orch.media.local_retry_s = 0.0
    joins = len(hub.joins())
    for _ in range(40):
        await orch.tick()
        await asyncio.sleep(0.05)
        if len(hub.joins()) >= joins + 2:
            break
    later = hub.joins()[joins:]
    assert {c for c, _ in later} == {"lead", "recv"}
    assert all(j.media is not None and j.media.instance == "county-a" for _, j in later)
    assert orch.media.no_live_media(lesson_id) is None
    assert any(e.startswith("media plane: live media restored") for e in _events(db, lesson_id))
    with db() as s:
        assert s.get(LessonMediaRoom, lesson_id) is not None
    await orch.stop()


async def test_a_stopped_instance_holds_up_only_the_lesson_placed_on_it(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    stopped, up = await start_janus(), await start_janus()
    plane = planes(
        {"county-a": instance(stopped), "county-b": instance(up)},
        request_timeout_s=4.0,
        down_after_failures=10,  # not declared down during the test: placement finds out
    )
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    for cid in INVENTORY:
        presence.registered(cid, None)
    await orch.start()
    await _wait("the first pass", lambda: orch.ticks >= 1)
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        now = utcnow()
        with db() as s:
            ids = [
                schedule_lesson(
                    s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
                ).id,
                schedule_lesson(
                    s, "lead2", ["recv2"], now + timedelta(seconds=2), now + timedelta(seconds=60)
                ).id,
            ]
        began = time.monotonic()
        orch.wake()
        await _wait("one lesson preparing", lambda: any(_state(db, i) != "scheduled" for i in ids))
        took = time.monotonic() - began
        waiting = [i for i in ids if _state(db, i) == "scheduled"]
        assert took < 2.0 and len(waiting) == 1, (took, waiting)
        await _wait("the other lesson preparing", lambda: _state(db, waiting[0]) != "scheduled")
        assert time.monotonic() - began >= 3.5  # it waited for its own placement only
        moved = next(e for e in _events(db, waiting[0]) if "on Janus instance" in e)
        assert moved.startswith("ALERT") and "county-a failed" in moved, moved
        assert orch.media is not None
        assert {orch.media.placement(i).instance for i in ids} == {"county-b"}  # type: ignore[union-attr]
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    await orch.stop()


async def test_a_release_05_agent_turning_up_late_moves_the_whole_lesson_off_janus(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    plane = planes({"county-a": instance(server)})
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson_id = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
        ).id
    presence.registered("lead", None)  # the receiving room's agent is not up yet
    await _settle(db, orch, lesson_id)
    placed = hub.joins()[0][1].media
    assert placed is not None and [c for c, _ in hub.joins()] == ["lead"]
    with db() as s:  # it registers: release 0.5
        room = s.get(Classroom, "recv")
        assert room is not None
        room.protocol_minor, room.agent_version = 5, "0.5.2"
        s.commit()
    presence.registered("recv", None)
    orch.agent_registered("recv")
    await orch.tick()
    await asyncio.sleep(0.1)
    later = hub.joins()[1:]
    assert {c for c, _ in later} == {"lead", "recv"}  # the lead leaves the room too
    assert all(j.media is None for _, j in later)
    assert await _rooms(plane, "county-a") == {}
    alert = [e for e in _events(db, lesson_id) if "cannot use Janus" in e]
    assert alert and alert[0].startswith("ALERT") and "recv" in alert[0], alert
    with db() as s:
        assert s.get(LessonMediaRoom, lesson_id) is None
    await orch.stop()


async def test_a_lesson_cancelled_while_its_room_is_made_leaves_no_room(
    db: sessionmaker[Session], start_janus: StartJanus, planes: Callable[..., MediaPlane]
) -> None:
    server = await start_janus()
    plane = planes({"county-a": instance(server)})
    await plane.start()
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, media=plane)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson_id = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
        ).id
    await orch.tick()  # its placement starts
    with db() as s:
        row = s.get(Lesson, lesson_id)
        assert row is not None
        row.state = "cancelled"
        s.commit()
    await _wait("its room made", lambda: plane.rooms.placement(lesson_id) is not None)
    await orch.tick()
    await _wait("its room gone", lambda: plane.rooms.placement(lesson_id) is None)
    assert await _rooms(plane, "county-a") == {}
    with db() as s:
        assert s.get(LessonMediaRoom, lesson_id) is None
    await orch.stop()
