"""The orchestrator places lessons on real Janus instances: the placement in every join,
a lesson moved when its instance dies, its room destroyed at its end, and a lesson that
nothing fits put on the built-in relay or refused, with an alert either way."""

from __future__ import annotations

import asyncio
import pathlib
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
from controller.db.models import Classroom, Lesson, LessonEvent
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.scheduling import schedule_lesson
from controller.media_plane.plane import MediaPlane
from protocols import envelope
from protocols.messages import Body, CommandAck, JoinLesson

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
    await orch.tick()
    await asyncio.sleep(0.05)
    return lesson.id


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
async def test_a_lesson_nothing_fits_falls_back_or_is_refused_with_an_alert(
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
    if fallback:
        assert _state(db, lesson_id) == "preparing"
        assert {c for c, _ in hub.joins()} == {"lead", "recv"}
        assert all(j.media is None for _, j in hub.joins())  # the built-in relay's joins
        alert = next(e for e in events if e.startswith("ALERT media plane: on the built-in"))
    else:
        assert _state(db, lesson_id) == "failed" and hub.joins() == []
        alert = next(e for e in events if e.startswith("ALERT media plane: lesson refused"))
        assert any(e.startswith("refused by the media plane") for e in events)
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
