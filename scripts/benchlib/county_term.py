"""A county's term in a controller's database, for the benchmarks that time the console:
the schools, classrooms, bells and weekly series bench-timetable makes, expanded."""

from __future__ import annotations

import pathlib
import sys
from datetime import date, timedelta

from sqlalchemy import func, select

from controller.db.models import Lesson
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.timetable.setup import expand_term


def fill_term(state: pathlib.Path, lessons: int, classrooms: int) -> int:
    """A term of ``lessons`` lessons for ``classrooms`` classrooms, dated from next Monday
    (so the orchestrator leaves them be); returns how many were stored."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    import bench_timetable

    url = database_url(state)
    migrate(url)
    today = date.today()
    bench_timetable.TERM_START = today + timedelta(days=7 - today.weekday())
    bench_timetable.setup(url, classrooms, lessons)
    with sessions(make_engine(url))() as db:
        expand_term(db, "t")
        return int(db.scalar(select(func.count()).select_from(Lesson)) or 0)
