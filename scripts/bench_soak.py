"""A school day on one pair of agents: does anything an agent holds grow from lesson to lesson?

A controller and two synthetic classrooms (a lead and a receiver, with the demo's rooms:
speakers on a PulseAudio sink and screens on Xvfb) run as real processes on loopback.
The whole day's timetable is scheduled up front through the controller's CLI, as a
scheduler would: ``--lessons`` lessons of ``--lesson-s`` with ``--break-s`` between them.
Each lesson starts and stops every source, as in production.

After each lesson has ended and its uploads are in (plus ``--settle-s``), each agent
process is measured with psutil: RSS, USS, open file descriptors, threads; the kinds of
fds and the thread names are kept, so growth names what grew.

Figures (``--json``: the last line is one JSON object):
- ``agent_rss_growth_pct``: per agent, RSS after the last lesson against after the first
  (target < 10);
- ``fd_growth`` / ``threads_growth``: per agent, last minus first (target 0), with
  ``fd_kinds_growth`` / ``thread_names_growth`` naming them;
- ``lessons``, ``lesson_s``, ``break_s`` and ``lesson_results``: each lesson's state
  (``uploaded`` is recorded), its worst delivery ratio and its recordings;
- ``ok``: every lesson uploaded and delivered, every target met.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]

from benchlib import room_rig as rr  # noqa: E402
from benchlib.lesson_summary import summarise  # noqa: E402
from benchlib.rig import BIN, LessonRig, RigError  # noqa: E402

LEAD, RECEIVER = "city-no1-101", "village-2-201"
AGENTS = (LEAD, RECEIVER)
RSS_TARGET_PCT = 10.0
MIN_DELIVERY = 0.9  # a lesson that delivered less than this on a track is not a pass


def fd_kind(target: str) -> str:
    """What an open fd is, without the parts that differ between lessons."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target
    if target.startswith("/"):
        path = pathlib.Path(target)
        return f"file *{path.suffix}" if path.suffix else f"file {path.parent}"
    return target


def sample(pid: int) -> dict[str, Any]:
    """RSS and USS (MB), open fds, threads and CPU seconds of one process, with the kinds
    of its fds and the names of its threads."""
    proc = psutil.Process(pid)
    mem = proc.memory_full_info()
    kinds: collections.Counter[str] = collections.Counter()
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            kinds[fd_kind(os.readlink(fd))] += 1
        except OSError:
            continue  # closed while listed
    names: collections.Counter[str] = collections.Counter()
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            names[(task / "comm").read_text().strip()] += 1
        except OSError:
            continue
    cpu = proc.cpu_times()
    return {
        "rss_mb": round(mem.rss / 2**20, 1),
        "uss_mb": round(mem.uss / 2**20, 1),
        "fds": proc.num_fds(),
        "threads": proc.num_threads(),
        "children": len(proc.children(recursive=True)),
        "cpu_s": round(cpu.user + cpu.system, 1),
        "fd_kinds": dict(kinds),
        "thread_names": dict(names),
    }


def py_spy_threads(pid: int, out: pathlib.Path) -> dict[str, int]:
    """Dump the process's Python stacks to ``out`` (py-spy) and count its threads by name,
    digits folded (``Thread-12 (run)`` and ``Thread-13 (run)`` are one kind)."""
    try:
        dump = subprocess.run(
            [str(BIN / "py-spy"), "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return {f"py-spy failed: {err}": 1}
    out.write_text(dump.stdout + dump.stderr)
    names = re.findall(r'^Thread \S+ \([^)]*\): "(.*)"$', dump.stdout, re.MULTILINE)
    return dict(collections.Counter(re.sub(r"\d+", "N", n) for n in names))


def counter_growth(first: dict[str, int], last: dict[str, int]) -> dict[str, int]:
    """Keys whose count changed, last minus first."""
    keys = set(first) | set(last)
    return {
        k: last.get(k, 0) - first.get(k, 0) for k in sorted(keys) if first.get(k) != last.get(k)
    }


def lesson_result(doc: dict[str, Any]) -> dict[str, Any]:
    """A lesson's state, worst delivery ratio and recordings, from the controller."""
    summary = summarise(doc, [])
    ratios = summary["delivery_ratio"]
    return {
        "id": doc["id"],
        "state": doc["state"],
        "delivery_min": min(ratios.values()) if ratios else 0.0,
        "tracks_delivered": len(ratios),
        "delivery": ratios,
        # Delivery needs both ends' reports: a classroom missing here has none stored.
        "reports_from": sorted(doc["reports"]),
        "recordings": len(doc["recordings"]),
    }


def open_rooms(rig: LessonRig, bare: bool) -> rr.RoomRig | None:
    """The controller and both agents online; with the demo's rooms unless ``bare``."""
    if bare:
        tokens = {cid: rig.add_classroom(cid) for cid in AGENTS}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online(list(AGENTS), 60)
        return None
    # As the demo sets them up, but nobody listens to the speakers: the harness's
    # recorders would take CPU from the agents under test.
    rooms = rr.RoomRig(
        rig,
        synthetic_mic=True,
        closed_loop=False,
        echo_cancel=False,
        listen_to=(),
        hear_mics=False,
    )
    rooms.open(
        [
            rr.RoomPlan(LEAD, "City No.1 Primary", lead=True),
            rr.RoomPlan(RECEIVER, "Village 2 Primary"),
        ],
        online_timeout=60,
    )
    return rooms


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The day: schedule it, and measure both agents after each lesson."""
    rig = LessonRig(heartbeat_s=1.0, prepare_s=args.prepare_s)
    rooms: rr.RoomRig | None = None
    rows: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    doc: dict[str, Any] = {
        "lessons": args.lessons,
        "lesson_s": args.lesson_s,
        "break_s": args.break_s,
        "rooms": not args.bare,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        rooms = open_rooms(rig, args.bare)
        pids = {cid: rig.procs[cid].pid for cid in AGENTS}
        doc["idle"] = {cid: sample(pid) for cid, pid in pids.items()}
        first = datetime.now(UTC) + timedelta(seconds=args.lead_in_s)
        period = args.lesson_s + args.break_s
        starts = [first + timedelta(seconds=i * period) for i in range(args.lessons)]
        lessons = [
            rig.schedule(LEAD, [RECEIVER], 0, args.lesson_s, start=t.isoformat()) for t in starts
        ]
        print(
            f"bench-soak: {args.lessons} lessons of {args.lesson_s:g} s, {args.break_s:g} s "
            f"breaks, first at {starts[0]:%H:%M:%S}; logs in {rig.logs}",
            flush=True,
        )
        for i, lesson in enumerate(lessons):
            end = starts[i] + timedelta(seconds=args.lesson_s)
            wait_s = (end - datetime.now(UTC)).total_seconds() + args.upload_timeout_s
            done = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), wait_s)
            time.sleep(args.settle_s)
            row: dict[str, Any] = {"lesson": i + 1, "at": datetime.now(UTC).isoformat()}
            row |= {cid: sample(pid) for cid, pid in pids.items()}
            if i in (0, len(lessons) - 1):  # Python's own thread names, first and last
                for cid, pid in pids.items():
                    dump = rig.logs / f"{cid}-py-spy-lesson{i + 1}.txt"
                    row[cid]["py_threads"] = py_spy_threads(pid, dump)
            row["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            # The sample counts only if taken in the break, before the next lesson's
            # sources start.
            nxt = starts[i + 1] - timedelta(seconds=args.prepare_s) if i + 1 < len(starts) else None
            row["in_break"] = nxt is None or datetime.now(UTC) < nxt
            rows.append(row)
            results.append(lesson_result(rig.get(f"/lessons/{done['id']}")))
            _print_row(row, results[-1])
    except RigError as err:
        doc["error"] = str(err)
        print(f"bench-soak: {err}", file=sys.stderr)
    finally:
        rig.stop()
        if rooms is not None:
            rooms.stop()
    doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    doc |= figures(rows, results)
    if doc["ok"] and args.clean:
        shutil.rmtree(rig.root, ignore_errors=True)
    else:
        doc["root"] = str(rig.root)
    return doc


def figures(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The growth figures, last lesson against first, and whether the day passed."""
    out: dict[str, Any] = {
        "lesson_results": results,
        "per_lesson": [
            {
                "lesson": r["lesson"],
                "loadavg": r["loadavg"],
                "in_break": r["in_break"],
                **{
                    cid: {k: r[cid][k] for k in ("rss_mb", "uss_mb", "fds", "threads", "cpu_s")}
                    for cid in AGENTS
                },
            }
            for r in rows
        ],
    }
    if len(rows) < 2:
        return out | {"ok": False}
    a, b = rows[0], rows[-1]
    out["agent_rss_growth_pct"] = {
        cid: round(100 * (b[cid]["rss_mb"] / a[cid]["rss_mb"] - 1), 2) for cid in AGENTS
    }
    out["agent_uss_growth_pct"] = {
        cid: round(100 * (b[cid]["uss_mb"] / a[cid]["uss_mb"] - 1), 2) for cid in AGENTS
    }
    out["fd_growth"] = {cid: b[cid]["fds"] - a[cid]["fds"] for cid in AGENTS}
    out["threads_growth"] = {cid: b[cid]["threads"] - a[cid]["threads"] for cid in AGENTS}
    out["fd_kinds_growth"] = {
        cid: counter_growth(a[cid]["fd_kinds"], b[cid]["fd_kinds"]) for cid in AGENTS
    }
    out["thread_names_growth"] = {
        cid: counter_growth(a[cid]["py_threads"], b[cid]["py_threads"]) for cid in AGENTS
    }
    lessons_ok = all(
        r["state"] == "uploaded" and r["delivery_min"] >= MIN_DELIVERY for r in results
    )
    targets = (
        all(v < RSS_TARGET_PCT for v in out["agent_rss_growth_pct"].values())
        and not any(out["fd_growth"].values())
        and not any(out["threads_growth"].values())
    )
    out["lessons_ok"] = lessons_ok
    out["samples_in_breaks"] = all(r["in_break"] for r in rows)
    out["ok"] = lessons_ok and targets and out["samples_in_breaks"]
    return out


def _print_row(row: dict[str, Any], result: dict[str, Any]) -> None:
    cells = [
        f"{cid.split('-')[0]} rss {row[cid]['rss_mb']:6.1f} uss {row[cid]['uss_mb']:6.1f} "
        f"fds {row[cid]['fds']:3d} thr {row[cid]['threads']:3d}"
        for cid in AGENTS
    ]
    print(
        f"lesson {row['lesson']:2d} {result['state']:<9} delivered {result['delivery_min']:.3f} "
        f"reports {len(result['reports_from'])} "
        f"rec {result['recordings']:2d} | {' | '.join(cells)} | load {row['loadavg'][0]:.2f}"
        + ("" if row["in_break"] else "  (sampled after the next lesson began)"),
        flush=True,
    )


def main() -> int:
    """Run the day and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--lessons", type=int, default=8, help="lessons in the day (≥ 2)")
    parser.add_argument("--lesson-s", type=float, default=90.0, help="each lesson's length")
    parser.add_argument("--break-s", type=float, default=30.0, help="break between lessons")
    parser.add_argument(
        "--settle-s", type=float, default=5.0, help="wait after uploads before measuring"
    )
    parser.add_argument("--lead-in-s", type=float, default=15.0, help="scheduling → first lesson")
    parser.add_argument("--prepare-s", type=float, default=4.0, help="controller's --prepare")
    parser.add_argument(
        "--upload-timeout-s", type=float, default=120.0, help="lesson end → uploaded, at most"
    )
    parser.add_argument(
        "--bare", action="store_true", help="the plain synthetic profile: no speakers, screens"
    )
    parser.add_argument("--clean", action="store_true", help="delete state and logs if ok")
    args = parser.parse_args()
    if args.lessons < 2:
        parser.error("--lessons must be at least 2 (growth is last against first)")
    if args.break_s < args.settle_s + args.prepare_s:
        parser.error("--break-s must leave room for --settle-s and the next --prepare-s")
    doc = run(args)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        for key in (
            "agent_rss_growth_pct",
            "agent_uss_growth_pct",
            "fd_growth",
            "threads_growth",
            "fd_kinds_growth",
            "thread_names_growth",
            "lessons_ok",
            "samples_in_breaks",
            "ok",
        ):
            print(f"{key:>22}: {doc.get(key)}")
        print(f"{'loadavg':>22}: start {doc['loadavg_start']} end {doc['loadavg_end']}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
