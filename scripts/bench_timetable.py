"""bench-timetable: creating a whole term's timetable, every lesson checked.

500 classrooms in 250 schools (a city and a village classroom each), every school with an
uplink and a bell schedule of 8 periods, a 20-week term with holidays and a make-up day,
and enough weekly synchronous series to make 10,000 lessons. The timed part is
``expand_term``: load the planner from the database, check every lesson (classroom and
teacher double bookings, receivers, capability, uplink) and write them all.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from datetime import date, timedelta

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from controller.db.models import Classroom, Lesson, LessonSeries
from controller.db.session import make_engine, migrate, sessions
from controller.timetable.setup import apply_setup, expand_term

TERM_START = date(2026, 3, 2)
WEEKS = 20
BELLS = [[f"{8 + p:02d}:00", f"{8 + p:02d}:40"] for p in range(8)]


def setup(db_url: str, classrooms: int, lessons: int) -> int:
    """Schools, classrooms, term and series; returns the number of series."""
    factory = sessions(make_engine(db_url))
    schools = classrooms // 2
    toml = [
        f'[[school]]\nid = "s{i}"\nuplink_kbps = 20000\nbells = {json.dumps(BELLS)}\n'
        for i in range(schools)
    ]
    last = TERM_START + timedelta(weeks=WEEKS) - timedelta(days=1)
    toml.append(
        f'[[term]]\nid = "t"\nstart = {TERM_START}\nend = {last}\n'
        f"holidays = [{TERM_START + timedelta(days=35)}]\n"
        f'makeup = [{{ date = {TERM_START + timedelta(days=40)}, runs_as = "monday" }}]\n'
    )
    device = [
        {"name": "teacher", "kind": "camera", "role": "teacher", "bitrate": 2_000_000},
        {"name": "panel", "kind": "panel", "role": "content", "bitrate": 1_000_000},
        {"name": "student", "kind": "camera", "role": "student", "bitrate": 600_000},
        {"name": "mic", "kind": "microphone", "role": "room", "bitrate": 48_000},
    ]
    with factory() as db:
        apply_setup(db, "\n".join(toml))
        db.execute(
            insert(Classroom),
            [
                {
                    "id": f"room-{i}",
                    "name": f"room {i}",
                    "school": f"s{i // 2}",
                    "online": False,
                    "agent_version": "",
                    "profile_name": "",
                    "profile_digest": "",
                    "inventory": device,
                    "health": {},
                }
                for i in range(classrooms)
            ],
        )
        # Each series: a classroom leads another school's classroom, weekly on a slot.
        per_series = WEEKS  # about one lesson a week
        count = -(-lessons // per_series)
        rows = []
        for n in range(count):
            lead = (2 * n) % classrooms
            receiver = (2 * n + 3) % classrooms  # a classroom of another school
            slot = n * 2 // classrooms  # a room's second series takes the next slot
            rows.append(
                {
                    "id": f"series-{n}",
                    "term_id": "t",
                    "kind": "synchronous",
                    "title": "",
                    "subject": ("music", "art", "english")[n % 3],
                    "teacher_id": f"teacher-{lead}",
                    "pairing_id": None,
                    "lead_classroom_id": f"room-{lead}",
                    "receivers": [f"room-{receiver}"],
                    "weekday": slot % 5,
                    "period": 1 + (slot // 5) % 8,
                    "exceptions": [],
                }
            )
        db.execute(insert(LessonSeries), rows)
        db.commit()
        return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lessons", type=int, default=10_000)
    parser.add_argument("--classrooms", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cb-bench-tt-") as tmp:
        url = f"sqlite:///{pathlib.Path(tmp) / 'controller.sqlite3'}"
        migrate(url)
        series = setup(url, args.classrooms, args.lessons)
        factory = sessions(make_engine(url))
        with factory() as db:
            start = time.perf_counter()
            result = expand_term(db, "t")
            seconds = time.perf_counter() - start
            stored = db.scalar(select(func.count()).select_from(Lesson))
    figures = {
        "lessons": len(result.created),
        "classrooms": args.classrooms,
        "series": series,
        "problems": len(result.problems),
        "stored": stored,
        "seconds": round(seconds, 2),
    }
    print(
        f"term timetable: {figures['lessons']} lessons from {series} weekly series across "
        f"{args.classrooms} classrooms, every lesson checked and written, in "
        f"{figures['seconds']} s ({figures['problems']} refused)"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
