"""bench-analytics: S-T analysis of scripted lessons on the rooms' real sound path, and
every report of a term with S-T figures.

What it measures, exactly:

- **The lessons.** Four scripted lessons, one of each teaching type (讲授型 lecture,
  练习型 practice, 对话型 dialogue, 混合型 mixed), each a lead room and a receiving room on
  one private PulseAudio server (``benchlib.talk_rig``). Each room's mouth reads recorded
  speech (espeak-ng) in the seconds its script says; both rooms' acoustic loops are closed
  (each room's speakers come back into its microphone 6 dB down, 60 ms late), so the
  other room's voice is in every microphone and the echo canceller is exercised, double
  talk included (the dialogue has seconds where both talk). Each room runs the agent's own
  ``pulse`` microphone driver, echo canceller, room sound (speakers, feeding the canceller
  what it plays) and talk tracker (WebRTC VAD); the cancelled microphone goes straight to
  the other room's speakers (no Opus, no network, no agent process: the agent's control
  plane and video are not running). The trackers' timelines are analysed by the
  controller's own code (``controller.analytics.st``) and compared with the same analysis
  of the script. Lessons are short (``--lesson-s``, default 240 s) and coded every
  ``--interval-s`` (default 5 s, so N = 48 samples a lesson) instead of 40 minutes coded
  every 30 s; the per-second timeline and the coding rule are the same.
- ``st_rt_abs_err``, ``st_ch_abs_err``: the worst over the lessons of |measured − script|;
  ``st_type_correct``: the share of lessons classified as scripted; ``seconds_agree``: the
  share of seconds whose merged code matches the script (for information).
- ``analytics_cpu_pct``: the tracker's own thread CPU time (VAD and coding, measured
  inside ``TalkTracker.hear``) over the lesson's length, the busiest room: what the
  analytics add to an agent (its echo canceller ran before and is not counted).
  ``rig_cpu_pct`` is this whole process (rooms, speakers, cancellers), for context.
- ``report_term_s``: every report of a term (``bench_reports``' county: 10,000 lessons
  over 500 classrooms, each lesson with stored S-T figures): the pairing report and its
  CSV, the quota engine and its four views with their CSVs (which now carry S-T).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import psutil
from bench_reports import TERM_START, WEEKS, seed
from benchlib import talk_rig as tr
from benchlib.pulse_server import PulseServer
from sqlalchemy import insert, select

from controller.analytics.st import RoomTimeline, analyse, merge
from controller.db.models import Lesson, LessonAnalysis
from controller.db.session import make_engine, migrate, sessions
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import all_views, csv_bytes, view_csv
from controller.timetable.reports import report_csv, term_report

LEAD_IN_S = 4  # the rooms run this long before the script starts (streams settle)

# Each lesson: (seconds, who) — T the lead talks, S the receiving room, B both, . nobody.
SCRIPTS: dict[str, list[tuple[int, str]]] = {
    "lecture": [
        (60, "T"),
        (5, "."),
        (40, "T"),
        (10, "S"),
        (45, "T"),
        (5, "."),
        (30, "T"),
        (10, "S"),
        (35, "T"),
    ],
    "practice": [
        (20, "T"),
        (80, "."),
        (10, "T"),
        (10, "S"),
        (70, "."),
        (15, "T"),
        (5, "S"),
        (30, "."),
    ],
    "dialogue": [
        *[(10, "T"), (10, "S")] * 6,
        *[(5, "T"), (5, "S")] * 6,
        (5, "T"),
        (5, "B"),
        (10, "S"),
        (10, "T"),
        (10, "S"),
        (10, "T"),
        (10, "."),
    ],
    "mixed": [
        (40, "T"),
        (15, "S"),
        (25, "."),
        (30, "T"),
        (20, "S"),
        (20, "."),
        (35, "T"),
        (10, "S"),
        (15, "."),
        (30, "T"),
    ],
}


def script_codes(script: list[tuple[int, str]], length: int) -> tuple[str, str]:
    """The lead's and the receiver's per-second codes of a script, cut or padded to
    ``length`` seconds (scaled when the lesson is not 240 s)."""
    total = sum(n for n, _ in script)
    lead, receiver = "", ""
    for n, who in script:
        n = max(1, round(n * length / total))
        lead += ("T" if who in "TB" else ".") * n
        receiver += ("S" if who in "SB" else ".") * n
    return lead[:length].ljust(length, "."), receiver[:length].ljust(length, ".")


def run_lessons(
    server: PulseServer, kinds: list[str], length: int, interval: int
) -> list[dict[str, object]]:
    """Run ``kinds`` at once; each lesson's figures."""
    start = tr.next_whole_second(LEAD_IN_S)
    lessons = []
    for i, kind in enumerate(kinds):
        lead_codes, receiver_codes = script_codes(SCRIPTS[kind], length)
        names = (f"k{i}{kind[:2]}l", f"k{i}{kind[:2]}r")
        for name in names:
            server.add_sink(f"{name}_spk")
            server.add_sink(f"{name}_mic")
        lead = tr.TalkRoom(server.server, names[0], True, tr.scripted("lead", start, lead_codes))
        receiver = tr.TalkRoom(
            server.server, names[1], False, tr.scripted("receiver", start, receiver_codes)
        )
        tr.pair([lead, receiver])
        lessons.append((kind, lead, receiver, lead_codes, receiver_codes))
    for _, lead, receiver, _, _ in lessons:
        lead.start()
        receiver.start()
    try:
        time.sleep(max(0.0, start + length + 1.5 - time.time()))
    finally:
        for _, lead, receiver, _, _ in lessons:
            lead.stop()
            receiver.stop()
    out = []
    for kind, lead, receiver, lead_codes, receiver_codes in lessons:
        truth = [
            RoomTimeline("lead", True, 0, lead_codes),
            RoomTimeline("receiver", False, 0, receiver_codes),
        ]
        heard = []
        for room in (lead, receiver):
            timeline = room.tracker.timeline()
            codes = "" if timeline is None else timeline.codes
            offset = 0 if timeline is None else round(timeline.start - start)
            heard.append(RoomTimeline(room.name, room.lead, offset, codes))
        want, got = analyse(truth, length, interval), analyse(heard, length, interval)
        merged_want, merged_got = merge(truth, length), merge(heard, length)
        agree = sum(a == b for a, b in zip(merged_want, merged_got, strict=True)) / length
        cpu = max(r.tracker.cpu_s for r in (lead, receiver)) / length * 100
        out.append(
            {
                "lesson": kind,
                "errors": [e for e in (lead.error, receiver.error) if e],
                "type_script": want.teaching_type,
                "type_measured": got.teaching_type,
                "rt_script": round(want.rt or 0, 4),
                "rt_measured": round(got.rt or 0, 4),
                "ch_script": round(want.ch or 0, 4),
                "ch_measured": round(got.ch or 0, 4),
                "samples_script": want.samples,
                "samples_measured": got.samples,
                "seconds_agree": round(agree, 3),
                "student_talk_s_script": want.student_talk_s,
                "student_talk_s_measured": got.student_talk_s,
                "analytics_cpu_pct": round(cpu, 3),
            }
        )
    return out


def term_reports(lessons: int, classrooms: int) -> dict[str, float]:
    """Every report of a term whose lessons all carry S-T figures."""
    with tempfile.TemporaryDirectory(prefix="cb-bench-an-") as tmp:
        url = f"sqlite:///{pathlib.Path(tmp) / 'controller.sqlite3'}"
        migrate(url)
        seed(url, classrooms, lessons)
        factory = sessions(make_engine(url))
        kinds = ["lecture", "practice", "dialogue", "mixed"]
        now = datetime.now(UTC)
        with factory() as db:
            ids = list(db.scalars(select(Lesson.id)))
            db.execute(
                insert(LessonAnalysis),
                [
                    {
                        "lesson_id": lid,
                        "interval_s": 30,
                        "samples": "TS" * 40,
                        "rt": 0.3 + (n % 7) / 10,
                        "ch": (n % 5) / 10,
                        "teaching_type": kinds[n % 4],
                        "teacher_talk_s": 1500 + n % 600,
                        "student_talk_s": 300 + n % 300,
                        "rooms": [{"classroom": "x", "turns": n % 9, "talk_s": 300}],
                        "computed_at": now,
                    }
                    for n, lid in enumerate(ids)
                ],
            )
            db.commit()
        last = TERM_START + timedelta(weeks=WEEKS) - timedelta(days=1)
        with factory() as db:
            began = time.perf_counter()
            size = len(report_csv(term_report(db, TERM_START, last)).encode("utf-8-sig"))
            tq = evaluate_term(db, "t")
            views = all_views(tq)
            for by, entries in views.items():
                size += len(csv_bytes(view_csv(entries, by)))
            total = time.perf_counter() - began
            analysed = sum(e.st.lessons for e in views["school"])
        return {"report_term_s": round(total, 3), "csv_bytes": size, "analysed": analysed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--lesson-s", type=int, default=240)
    parser.add_argument("--interval-s", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2, help="lessons at once")
    parser.add_argument("--lessons", default=",".join(SCRIPTS), help="comma-separated types")
    parser.add_argument("--term-lessons", type=int, default=10_000)
    parser.add_argument("--term-classrooms", type=int, default=500)
    args = parser.parse_args()
    kinds = [k for k in args.lessons.split(",") if k]
    unknown = [k for k in kinds if k not in SCRIPTS]
    if unknown:
        parser.error(f"unknown lesson types {unknown}; use some of {', '.join(SCRIPTS)}")
    process = psutil.Process()
    results: list[dict[str, object]] = []
    server = PulseServer()
    server.start()
    cpu0, wall0 = process.cpu_times(), time.monotonic()
    try:
        for i in range(0, len(kinds), args.parallel):
            results += run_lessons(
                server, kinds[i : i + args.parallel], args.lesson_s, args.interval_s
            )
    finally:
        server.cleanup()
    cpu1, wall = process.cpu_times(), time.monotonic() - wall0
    rig_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall * 100
    for r in results:
        print(
            f"{r['lesson']:>9}: type {r['type_measured']} (script {r['type_script']}), "
            f"Rt {r['rt_measured']} ({r['rt_script']}), Ch {r['ch_measured']} "
            f"({r['ch_script']}), seconds agree {r['seconds_agree']:.1%}, "
            f"tracker {r['analytics_cpu_pct']} % of a core"
            + (f"; ERRORS {r['errors']}" if r["errors"] else "")
        )
        print(
            f"           samples {r['samples_measured']}\n           script  {r['samples_script']}"
        )
    term = term_reports(args.term_lessons, args.term_classrooms)
    figures = {
        "lessons": len(results),
        "lesson_s": args.lesson_s,
        "interval_s": args.interval_s,
        "st_rt_abs_err": round(
            max(abs(float(r["rt_measured"]) - float(r["rt_script"])) for r in results),
            4,  # type: ignore[arg-type]
        ),
        "st_ch_abs_err": round(
            max(abs(float(r["ch_measured"]) - float(r["ch_script"])) for r in results),
            4,  # type: ignore[arg-type]
        ),
        "st_type_correct": round(
            sum(r["type_measured"] == r["type_script"] for r in results) / len(results), 3
        ),
        "seconds_agree_min": min(float(r["seconds_agree"]) for r in results),  # type: ignore[arg-type]
        "analytics_cpu_pct": max(float(r["analytics_cpu_pct"]) for r in results),  # type: ignore[arg-type]
        "rig_cpu_pct": round(rig_cpu, 1),
        "load_avg_1m": round(psutil.getloadavg()[0], 2),
        **term,
        "per_lesson": [
            {k: v for k, v in r.items() if not k.startswith("samples")} for r in results
        ],
    }
    print(
        f"S-T: worst |Rt error| {figures['st_rt_abs_err']}, worst |Ch error| "
        f"{figures['st_ch_abs_err']} (targets ≤ 0.05), types right "
        f"{figures['st_type_correct']:.0%} (target 100 %), tracker "
        f"{figures['analytics_cpu_pct']} % of a core (target < 5 %); every report of a "
        f"{args.term_lessons}-lesson term {figures['report_term_s']} s (target < 5 s)"
    )
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
