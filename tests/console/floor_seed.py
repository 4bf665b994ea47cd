"""A lesson with two receiving rooms for the floor tests, in the state asked for."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from console.harness import Console

from controller.db.models import Classroom, School
from controller.lessons.scheduling import schedule_lesson

RECEIVERS = ["village-201", "village-202"]
_hours = itertools.count(1)


def floor_lesson(console: Console, state: str = "live", teacher: str = "teacher") -> str:
    """A lesson city-101 → village-201, village-202 taught by ``teacher``, days ahead (so
    the orchestrator leaves it alone) and put into ``state``; answers its id."""
    start = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    start += timedelta(hours=next(_hours))
    with console.db() as s:
        if s.get(School, "Village School") is None:
            s.add(School(id="Village School", name="Village School No. 2"))
        if s.get(Classroom, "village-202") is None:
            s.add(
                Classroom(
                    id="village-202",
                    name="Village 202",
                    school="Village School",
                    online=False,
                    inventory=[],
                    health={},
                )
            )
        s.commit()
        lesson = schedule_lesson(
            s,
            "city-101",
            RECEIVERS,
            start,
            start + timedelta(minutes=40),
            title="Maths",
            teacher=teacher,
        )
        lesson.state = state
        s.commit()
        return lesson.id
