"""bench-reports: every report of a term, over a county's whole term of lessons.

500 classrooms in 250 schools, 125 pairings (a city school supporting a village school),
a 20-week term and 10,000 lessons of every kind across it. Each lesson has what the
reports read: the receivers' manifests (85 % held: 95 % of the lead's camera received;
the rest 50 %), the lead's stitched recording, and one lesson in ten published to the
resource library. ``report_term_s`` (target: under 5 s) is all of the term's reports as
one run makes them: the pairing report (``term_report``) and its CSV, then the quota
engine over the term once and its four views (school, teacher, subject, pairing) each with
its CSV. ``request_by_<view>_s`` is one API request of a view (the engine afresh).
``archive_term_s`` and ``archive_month_s`` are what the report archive's run takes for the
term and for its first month: the engine, the printable HTML and every CSV, written to
local storage (``controller.report_archive``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from controller.db.models import (
    Classroom,
    Lesson,
    LessonReceiver,
    PublishedRecording,
    Recording,
    RecordingManifest,
    Term,
)
from controller.db.session import make_engine, migrate, sessions
from controller.report_archive.periods import periods_of
from controller.report_archive.scheduler import generate
from controller.storage.local import LocalStorage
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import (
    VIEWS,
    all_views,
    build_view,
    csv_bytes,
    view_csv,
)
from controller.timetable.reports import report_csv, term_report
from controller.timetable.setup import apply_setup

TERM_START = date(2026, 3, 2)
WEEKS = 20
KINDS = ["synchronous"] * 12 + ["research"] * 3 + ["delivery"] * 2 + ["master_teacher"] * 2
KINDS += ["open_school"]
SUBJECTS = ("music", "art", "english", "math", "chinese", "science")


def seed(url: str, classrooms: int, lessons: int) -> None:
    """The county, its term and its lessons with their recordings."""
    factory = sessions(make_engine(url))
    schools = classrooms // 2
    last = TERM_START + timedelta(weeks=WEEKS) - timedelta(days=1)
    toml = [f'[[school]]\nid = "s{i}"\nname = "学校{i}"\n' for i in range(schools)]
    toml += [f'[[teacher]]\nid = "t{i}"\nschool = "s{i // 2}"\n' for i in range(classrooms)]
    toml.append(f'[[term]]\nid = "t"\nstart = {TERM_START}\nend = {last}\n')
    toml += [
        f'[[pairing]]\nid = "p{i}"\nsupporting = "s{2 * i}"\nsupported = ["s{2 * i + 1}"]\n'
        f'forms = ["synchronous", "research", "delivery", "master_teacher"]\n'
        f"start = {TERM_START}\nend = {last}\n"
        for i in range(schools // 2)
    ]
    now = datetime.now(UTC)
    with factory() as db:
        apply_setup(db, "\n".join(toml))
        db.execute(
            insert(Classroom),
            [
                {"id": f"room-{i}", "name": f"room {i}", "school": f"s{i // 2}"}
                | {"online": False, "agent_version": "", "profile_name": ""}
                | {"profile_digest": "", "inventory": [], "health": {}}
                for i in range(classrooms)
            ],
        )
        rows, receivers, manifests, recordings, published = [], [], [], [], []
        days = [TERM_START + timedelta(days=d) for d in range(WEEKS * 7) if d % 7 < 5]
        for n in range(lessons):
            # A city school's room (school 2k) leads its paired village school's (2k+1).
            pair = n % (schools // 2)
            lead = 4 * pair + (n // (schools // 2)) % 2
            receiver = lead + 2
            day = days[n * len(days) // lessons]
            start = datetime(day.year, day.month, day.day, 1 + n % 8, tzinfo=UTC)
            lid = f"l{n:05d}"
            rows.append(
                {
                    "id": lid,
                    "kind": KINDS[n % len(KINDS)],
                    "title": "",
                    "lead_classroom_id": f"room-{lead}",
                    "start_at": start,
                    "end_at": start + timedelta(minutes=40),
                    "state": "ended",
                    "reports": {},
                    "error": "",
                    "created_at": now,
                    "subject": SUBJECTS[n % len(SUBJECTS)],
                    "teacher_id": f"t{lead}",
                    "pairing_id": f"p{pair}" if n % 2 else None,
                    "term_id": "t",
                    "one_way": False,
                }
            )
            receivers.append({"lesson_id": lid, "classroom_id": f"room-{receiver}"})
            share = 0.5 if n % 7 == 3 else 0.95
            manifests.append(
                {
                    "lesson_id": lid,
                    "classroom_id": f"room-{receiver}",
                    "manifest": {},
                    "coverage": {
                        "ratio": 1.0,
                        "tracks": [{"direction": "recv", "kind": "video", "ratio": share}],
                    },
                    "received_at": now,
                }
            )
            recordings.append(
                {
                    "lesson_id": lid,
                    "classroom_id": f"room-{lead}",
                    "track": "teacher",
                    "kind": "video",
                    "path": f"{lid}/teacher.mp4",
                    "codec": "h264",
                    "duration_s": 2400.0,
                    "segments": 40,
                    "sha256": "0" * 64,
                    "created_at": now,
                }
            )
            if n % 10 == 0:
                published.append(
                    {
                        "lesson_id": lid,
                        "classroom_id": f"room-{lead}",
                        "track": "teacher",
                        "published_by": "bench",
                        "published_at": now,
                    }
                )
        for model, batch in (
            (Lesson, rows),
            (LessonReceiver, receivers),
            (RecordingManifest, manifests),
            (Recording, recordings),
            (PublishedRecording, published),
        ):
            db.execute(insert(model), batch)
        db.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--lessons", type=int, default=10_000)
    parser.add_argument("--classrooms", type=int, default=500)
    args = parser.parse_args()
    last = TERM_START + timedelta(weeks=WEEKS) - timedelta(days=1)
    figures: dict[str, float | int] = {"lessons": args.lessons, "classrooms": args.classrooms}
    with tempfile.TemporaryDirectory(prefix="cb-bench-rp-") as tmp:
        url = f"sqlite:///{pathlib.Path(tmp) / 'controller.sqlite3'}"
        migrate(url)
        seed(url, args.classrooms, args.lessons)
        factory = sessions(make_engine(url))
        with factory() as db:
            # All of a term's reports, as one run makes them: the pairing report and its
            # CSV, then the quota engine once and every view with its CSV.
            began = time.perf_counter()
            pairing = term_report(db, TERM_START, last)
            size = len(report_csv(pairing).encode("utf-8-sig"))
            figures["pairings_s"] = round(time.perf_counter() - began, 3)
            mid = time.perf_counter()
            tq = evaluate_term(db, "t")
            figures["quota_engine_s"] = round(time.perf_counter() - mid, 3)
            for by, entries in all_views(tq).items():
                size += len(csv_bytes(view_csv(entries, by)))
                figures[f"entries_by_{by}"] = len(entries)
            total = time.perf_counter() - began
            results = len(tq.results)
        with factory() as db:
            # Each view as one API request makes it: the engine afresh, the view, its CSV.
            for by in VIEWS:
                db.expire_all()
                began = time.perf_counter()
                view_csv(build_view(evaluate_term(db, "t"), by), by)
                figures[f"request_by_{by}_s"] = round(time.perf_counter() - began, 3)
        with factory() as db:
            term = db.get(Term, "t")
            assert term is not None
            month, whole = periods_of(term)[0], periods_of(term)[-1]
        storage = LocalStorage(pathlib.Path(tmp) / "storage")
        for name, period in (("archive_term_s", whole), ("archive_month_s", month)):
            began = time.perf_counter()
            generate(factory, storage, period, datetime.now(UTC))
            figures[name] = round(time.perf_counter() - began, 3)
        figures["quota_figures"] = results
        figures["csv_bytes"] = size
        figures["report_term_s"] = round(total, 3)
    print(
        f"term reports: {args.lessons} lessons across {args.classrooms} classrooms; "
        f"pairing report {figures['pairings_s']} s, quota engine {figures['quota_engine_s']} s; "
        f"every report ({results} quota figures, 4 views, {size} bytes of CSV) "
        f"{figures['report_term_s']} s (target < 5 s); one API request per view: "
        + ", ".join(f"{by} {figures[f'request_by_{by}_s']} s" for by in VIEWS)
        + f"; archived term report {figures['archive_term_s']} s, month "
        f"{figures['archive_month_s']} s"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
