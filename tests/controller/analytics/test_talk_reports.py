"""Talk timelines in lesson reports (S-T analysis) on both engines: the rooms' reports
arriving at once all count in the lesson's figures; a room sending again replaces its
timeline; a classroom that is not in the lesson is not heard."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import KeyBook, ServerKeys
from controller.agents.messages import AgentMessages
from controller.agents.presence import Presence
from controller.db.models import Classroom, Lesson, LessonAnalysis, LessonTalk
from controller.db.session import as_utc, make_engine, migrate, sessions, utcnow
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.scheduling import schedule_lesson
from protocols import envelope
from protocols.messages import LessonReport, TalkTimeline

ROOMS = ["lead", "r1", "r2", "stranger"]


def _setup(url: str, tmp_path: pathlib.Path) -> tuple[sessionmaker[Session], AgentMessages, str]:
    migrate(url)
    db = sessions(make_engine(url))
    with db() as s:
        for cid in ROOMS:
            s.add(Classroom(id=cid, name=cid, school="", inventory=[], health={}))
        s.commit()
        start = utcnow() + timedelta(days=1)
        lesson = schedule_lesson(s, "lead", ["r1", "r2"], start, start + timedelta(minutes=10))
        lesson_id = lesson.id
    presence = Presence(heartbeat_interval=1.0)
    orch = Orchestrator(db, None, presence)  # type: ignore[arg-type]
    keys = ServerKeys.load_or_create(tmp_path)
    return db, AgentMessages(db, keys, KeyBook(), presence, orch, "https://x"), lesson_id


async def test_every_rooms_timeline_counts_and_a_resend_replaces(
    db_url: str, tmp_path: pathlib.Path
) -> None:
    db, messages, lesson_id = _setup(db_url, tmp_path)
    with db() as s:
        lesson = s.get(Lesson, lesson_id)
        assert lesson is not None
        start = as_utc(lesson.start_at).timestamp()
    # 10 minutes: the lead asks for 30 s, r1 answers 30 s, the lead again, r2 answers...
    lead = ("T" * 30 + "." * 30) * 10
    r1 = ("." * 30 + "S" * 30 + "." * 60) * 5
    r2 = ("." * 90 + "S" * 30) * 5
    codes = {"lead": lead, "r1": r1, "r2": r2, "stranger": "S" * 600}

    def report(cid: str) -> envelope.Envelope:
        talk = TalkTimeline(start=start, codes=codes[cid])
        return envelope.make(LessonReport(lesson_id=lesson_id, tracks=[], talk=talk), cid)

    await asyncio.gather(*(messages.handle(cid, report(cid)) for cid in ROOMS))
    with db() as s:
        stored = dict(s.execute(select(LessonTalk.classroom_id, LessonTalk.codes)).all())
        figures = s.get(LessonAnalysis, lesson_id)
        assert sorted(stored) == ["lead", "r1", "r2"]  # the stranger is not in the lesson
        assert figures is not None
        assert figures.samples == "TS" * 10
        assert (figures.rt, figures.ch, figures.teaching_type) == (0.5, 0.95, "dialogue")
        assert (figures.teacher_talk_s, figures.student_talk_s) == (300, 300)
        assert figures.rooms == [
            {"classroom": "r1", "turns": 5, "talk_s": 150},
            {"classroom": "r2", "turns": 5, "talk_s": 150},
        ]
    # r1's agent sends its report again, now silent throughout: it replaces the first.
    codes["r1"] = "." * 600
    await messages.handle("r1", report("r1"))
    with db() as s:
        figures = s.get(LessonAnalysis, lesson_id)
        assert figures is not None
        # The same samples: a silent half-minute is the students' too (S-T counts silence,
        # practice and thinking as theirs), but half the student talk is gone.
        assert figures.samples == "TS" * 10
        assert figures.student_talk_s == 150
        assert [r["talk_s"] for r in figures.rooms] == [0, 150]
