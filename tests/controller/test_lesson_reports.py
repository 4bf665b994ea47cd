"""Lesson reports that arrive together are all kept (each is handled on a worker thread)."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import KeyBook, ServerKeys
from controller.agents.messages import AgentMessages
from controller.agents.presence import Presence
from controller.db.models import Classroom, Lesson
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.scheduling import schedule_lesson
from protocols import envelope
from protocols.messages import LessonReport, TrackReport

ROOMS = ["lead", "r1", "r2", "r3"]


def _db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    with factory() as s:
        for cid in ROOMS:
            s.add(Classroom(id=cid, name=cid, school="", inventory=[], health={}))
        s.commit()
    return factory


async def test_reports_of_every_room_arriving_at_once_are_all_kept(tmp_path: pathlib.Path) -> None:
    db = _db(tmp_path)
    presence = Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, None, presence)  # type: ignore[arg-type]
    messages = AgentMessages(
        db, ServerKeys.load_or_create(tmp_path), KeyBook(), presence, orch, "https://x"
    )
    lessons = []
    with db() as s:
        for i in range(15):
            start = utcnow() + timedelta(days=1, hours=i)
            lessons.append(
                schedule_lesson(
                    s, "lead", ROOMS[1:], start, start + timedelta(minutes=40), kind="research"
                ).id
            )

    def report(cid: str, lesson_id: str) -> envelope.Envelope:
        track = TrackReport(
            track="mic", kind="audio", direction="send", source_classroom=cid, frames=100
        )
        return envelope.make(LessonReport(lesson_id=lesson_id, tracks=[track]), cid)

    for lesson_id in lessons:  # the four rooms' reports of a lesson, all at once
        await asyncio.gather(*(messages.handle(cid, report(cid, lesson_id)) for cid in ROOMS))
    with db() as s:
        for lesson_id in lessons:
            row = s.get(Lesson, lesson_id)
            assert row is not None and sorted(row.reports) == ROOMS, row.reports
