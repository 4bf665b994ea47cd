"""The orchestrator's state machine, driven by ticks against a fake hub."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.presence import Presence
from controller.agents.registry import add_classroom
from controller.db.models import Classroom, Lesson, Recording
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.scheduling import schedule_lesson
from controller.live_push.store import set_push_targets
from protocols import envelope
from protocols.messages import Body, CommandAck, JoinLesson, PushTarget

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
        self.pushed: list[tuple[str, Body]] = []

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Any:
        self.sent.append((classroom_id, body))
        return envelope.make(CommandAck(command=body.TYPE, ok=True), classroom_id)

    async def send(self, classroom_id: str, body: Body) -> str:
        self.pushed.append((classroom_id, body))
        return "id"

    def types(self, classroom_id: str) -> list[str]:
        return [b.TYPE for c, b in self.sent if c == classroom_id]


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    url = db_url
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, inventory in INVENTORY.items():
            add_classroom(s, cid, cid, "", keys.public)
            s.get(Classroom, cid).inventory = inventory  # type: ignore[union-attr]
        s.commit()
    return factory


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_lesson_runs_through_its_states_and_late_agent_joins(
    db: sessionmaker[Session],
) -> None:
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, prepare_s=5.0, leave_grace_s=0.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
        )
    presence.registered("lead", None)  # the receiver is not online yet
    await orch.tick()
    await _settle()
    # the online agent got its schedule to keep for offline work
    ((cid, update),) = hub.pushed
    assert cid == "lead" and [j.lesson_id for j in update.lessons] == [lesson.id]  # type: ignore[attr-defined]
    assert hub.types("lead") == ["cmd.join"]
    join = hub.sent[0][1]
    assert join.publish == ["teacher", "mic"]  # type: ignore[attr-defined]
    assert [(x.track, x.kind, x.width) for x in join.subscribe] == [  # type: ignore[attr-defined]
        ("student", "video", 640),
        ("mic", "audio", 0),
    ]

    with db() as s:  # lesson time arrives
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "preparing"
        row.start_at = utcnow() - timedelta(seconds=1)
        s.commit()
    await orch.tick()
    await _settle()
    assert hub.types("lead") == ["cmd.join", "cmd.record.start"]

    presence.registered("recv", None)  # the late receiver appears
    await orch.tick()
    await _settle()
    await orch.tick()
    await _settle()
    assert hub.types("recv") == ["cmd.join", "cmd.record.start"]

    with db() as s:  # lesson over
        row = s.get(Lesson, lesson.id)
        assert row is not None
        row.end_at = utcnow() - timedelta(seconds=1)
        s.commit()
    await orch.tick()
    await _settle()
    await orch.tick()
    await _settle()
    assert hub.types("lead")[-2:] == ["cmd.record.stop", "cmd.leave"]
    assert hub.types("recv")[-2:] == ["cmd.record.stop", "cmd.leave"]
    with db() as s:
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "ending"  # waiting for the reports
        row.reports = {"lead": [], "recv": []}
        s.commit()
    await orch.tick()
    with db() as s:
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "recorded"
        for cid in ("lead", "recv"):
            s.add(
                Recording(
                    lesson_id=lesson.id,
                    classroom_id=cid,
                    track="t",
                    kind="video",
                    path="/x",
                    codec="h264",
                    duration_s=1,
                    segments=1,
                    sha256="0" * 64,
                    created_at=utcnow(),
                )
            )
        s.commit()
    await orch.tick()
    with db() as s:
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "uploaded"
    await orch.stop()


async def test_lesson_missed_while_controller_was_down_is_marked_failed(
    db: sessionmaker[Session],
) -> None:
    orch = Orchestrator(db, FakeHub(), Presence(1.0))  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now - timedelta(hours=2), now - timedelta(hours=1)
        )
    await orch.tick()
    with db() as s:
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "failed"
    await orch.stop()


async def test_not_ready_raises_an_alert_when_preparing(db: sessionmaker[Session]) -> None:
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, prepare_s=300.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(minutes=4), now + timedelta(minutes=44)
        )
        room = s.get(Classroom, "lead")
        assert room is not None
        room.health = {"readiness": {"disk": "disk short on /var/lib: free space"}}
        s.commit()
    presence.registered("lead", None)  # the receiver is offline
    await orch.tick()
    await _settle()
    with db() as s:
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "preparing"  # 5 minutes ahead
        from controller.lessons.scheduling import lesson_document

        details = [e["detail"] for e in lesson_document(s, row)["events"]]  # type: ignore[index]
    [alert] = [d for d in details if d.startswith("ALERT not ready")]
    assert "recv: agent offline" in alert and "lead: disk short" in alert


async def _state(db: sessionmaker[Session], lesson_id: str) -> str:
    def read() -> str:
        with db() as s:
            row = s.get(Lesson, lesson_id)
            assert row is not None
            return row.state

    return await asyncio.to_thread(read)


async def _until(db: sessionmaker[Session], lesson_id: str, state: str, within: float) -> float:
    """Seconds until the lesson reaches ``state`` (fails after ``within``)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while await _state(db, lesson_id) != state:
        assert loop.time() - began < within, f"not {state} within {within} s"
        await asyncio.sleep(0.02)
    return loop.time() - began


async def test_the_orchestrator_sleeps_until_the_next_transition_and_keeps_time(
    db: sessionmaker[Session],
) -> None:
    """No polling: a lesson 2 s away is prepared, started and ended on time, with a
    handful of passes, not one every 0.2 s."""
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    presence.registered("lead", None)
    presence.registered("recv", None)
    orch = Orchestrator(db, hub, presence, prepare_s=1.0, leave_grace_s=0.0, idle_s=30.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2.0), now + timedelta(seconds=3.5)
        )
    await orch.start()
    try:
        await _until(db, lesson.id, "preparing", 3.0)
        late = (utcnow() - (now + timedelta(seconds=1.0))).total_seconds()
        assert late < 0.3, f"prepared {late:.2f} s late"
        await _until(db, lesson.id, "live", 3.0)
        late = (utcnow() - (now + timedelta(seconds=2.0))).total_seconds()
        assert late < 0.3, f"live {late:.2f} s late"
        await _until(db, lesson.id, "ending", 3.0)
        late = (utcnow() - (now + timedelta(seconds=3.5))).total_seconds()
        assert late < 0.3, f"ended {late:.2f} s late"
        assert "cmd.record.start" in hub.types("recv")
        # 3.5 s of polling at 0.2 s was 18 passes; each transition and answer is one now.
        assert orch.ticks <= 14, orch.ticks
        await asyncio.sleep(0.5)  # the answers to "stop recording" and "leave" come in
        quiet = orch.ticks
        await asyncio.sleep(1.0)  # then it waits for the reports: no event, no pass
        assert orch.ticks == quiet
    finally:
        await orch.stop()


async def test_a_lesson_added_in_this_process_wakes_it_and_reaches_the_agents(
    db: sessionmaker[Session],
) -> None:
    """A lesson scheduled (from any thread) wakes the sleeping orchestrator; its rooms,
    and only they, are sent their new schedule, without a push every 2 s."""
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, prepare_s=5.0, idle_s=30.0)  # type: ignore[arg-type]
    with db() as s:
        s.add(Classroom(id="other", name="other", school="", inventory=[], health={}))
        s.commit()
    for cid in ("lead", "recv", "other"):
        presence.registered(cid, None)
    await orch.start()
    try:
        await asyncio.sleep(0.3)
        assert sorted(c for c, _ in hub.pushed) == ["lead", "other", "recv"]  # the first sweep
        hub.pushed.clear()
        await asyncio.sleep(2.5)
        assert hub.pushed == [], "schedules pushed with nothing changed"

        def add() -> str:  # as a route does, on a worker thread
            with db() as s:
                start = utcnow() + timedelta(days=3)
                return schedule_lesson(s, "lead", ["recv"], start, start + timedelta(minutes=40)).id

        lesson_id = await asyncio.to_thread(add)
        await asyncio.sleep(0.5)
        assert sorted(c for c, _ in hub.pushed) == ["lead", "recv"]
        for _, update in hub.pushed:
            assert [j.lesson_id for j in update.lessons] == [lesson_id]  # type: ignore[attr-defined]

        def start_now() -> None:  # the scheduler moves it to now: prepared at once
            with db() as s:
                row = s.get(Lesson, lesson_id)
                assert row is not None
                row.start_at = utcnow() + timedelta(seconds=1)
                row.end_at = utcnow() + timedelta(minutes=40)
                s.commit()

        await asyncio.to_thread(start_now)
        assert await _until(db, lesson_id, "preparing", 1.0) < 0.5
    finally:
        await orch.stop()


async def test_the_passes_query_off_the_event_loop(db: sessionmaker[Session]) -> None:
    """Every statement of a pass and of the schedule pushes runs on a worker thread."""
    import threading

    from sqlalchemy import event

    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    presence.registered("lead", None)
    presence.registered("recv", None)
    orch = Orchestrator(db, hub, presence, prepare_s=5.0, leave_grace_s=0.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        schedule_lesson(
            s, "lead", ["recv"], now - timedelta(seconds=1), now + timedelta(seconds=60)
        )
    engine = db.kw["bind"]
    threads: list[int] = []

    def seen(*_args: object) -> None:
        threads.append(threading.get_ident())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            await orch.tick()
            await _settle()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # Command answers are logged in a worker thread too.
    assert threads and threading.get_ident() not in threads
    assert "cmd.record.start" in hub.types("recv")


async def test_a_lesson_that_cannot_advance_does_not_stall_the_others(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.lessons.orchestrator as orchestrator_module
    from controller.common.errors import WrongState
    from controller.lessons.scheduling import transition

    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, prepare_s=5.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        first, second = now + timedelta(seconds=1), now + timedelta(hours=2)
        stuck = schedule_lesson(s, "lead", ["recv"], first, first + timedelta(hours=1))
        fine = schedule_lesson(s, "lead", ["recv"], second, second + timedelta(hours=1))
        row = s.get(Lesson, fine.id)
        assert row is not None
        row.start_at = now + timedelta(seconds=2)  # both due in this pass
        s.commit()

    def refusing(db_: Session, lesson: Lesson, to_state: str, detail: str = "") -> None:
        if lesson.id == stuck.id:
            raise WrongState(f"lesson {lesson.id} refused for the test")
        transition(db_, lesson, to_state, detail)

    monkeypatch.setattr(orchestrator_module, "transition", refusing)
    await orch.tick()
    assert orch.tick_errors == 1
    assert await _state(db, stuck.id) == "scheduled"
    assert await _state(db, fine.id) == "preparing"


# A lesson's live push targets reach its lead only, in its join and its schedule, and a
# change while the lesson is live is sent to the lead at once as new terms.
DINGTALK = PushTarget(name="钉钉直播", url="rtmp://push.example/live/KEY-1")
WECHAT = PushTarget(name="微信直播", url="rtmp://wx.example/app/KEY-2")


def _joins(hub: FakeHub, cid: str) -> list[JoinLesson]:
    return [b for c, b in hub.sent if c == cid and isinstance(b, JoinLesson)]


async def test_targets_go_to_the_lead_and_a_live_change_rejoins_it(
    db: sessionmaker[Session],
) -> None:
    hub, presence = FakeHub(), Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, hub, presence, prepare_s=5.0, leave_grace_s=0.0)  # type: ignore[arg-type]
    now = utcnow()
    with db() as s:
        lesson = schedule_lesson(
            s, "lead", ["recv"], now + timedelta(seconds=2), now + timedelta(seconds=60)
        )
        set_push_targets(s, lesson, [DINGTALK], "scheduler")
    presence.registered("lead", None)
    presence.registered("recv", None)
    await orch.tick()
    await _settle()
    schedules = {c: b for c, b in hub.pushed}
    assert [j.push_targets for j in schedules["lead"].lessons] == [[DINGTALK]]  # type: ignore[attr-defined]
    assert [j.push_targets for j in schedules["recv"].lessons] == [[]]  # type: ignore[attr-defined]
    assert [j.push_targets for j in _joins(hub, "lead")] == [[DINGTALK]]
    assert [j.push_targets for j in _joins(hub, "recv")] == [[]]

    with db() as s:  # the lesson starts
        row = s.get(Lesson, lesson.id)
        assert row is not None
        row.start_at = utcnow() - timedelta(seconds=1)
        s.commit()
    for _ in range(2):
        await orch.tick()
        await _settle()
    sent_before = len(hub.sent)
    await orch.tick()  # nothing changed: nobody is told anything
    await _settle()
    assert len(hub.sent) == sent_before

    with db() as s:  # mid-lesson, the scheduler adds WeChat and drops DingTalk
        row = s.get(Lesson, lesson.id)
        assert row is not None and row.state == "live"
        set_push_targets(s, row, [WECHAT], "scheduler")
    await orch.tick()
    await _settle()
    assert _joins(hub, "lead")[-1].push_targets == [WECHAT]
    assert len(_joins(hub, "recv")) == 1  # a receiver's terms did not change
    await orch.stop()
    await asyncio.sleep(0)
