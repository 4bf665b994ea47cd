"""bench-console: how fast the web console shows its pages and a patrol video.

page_ms: a controller (real process) whose database holds a term of 10,000 lessons (filled
the way bench-timetable does, dated from next Monday so the orchestrator leaves them be)
and 500 classrooms; a signed-in Debian Chromium opens each console page N times. A page's
time runs from the click on its nav button to the page marking its data rendered
(``#page[data-ready=<page>]``); ``dashboard_load_ms`` is the cold load of ``/`` (navigation
start to the dashboard rendered).

patrol_first_frame_s: two synthetic agents in a live lesson on the same controller; from
the click on the lesson's patrol tile to the big view's first decoded frame
(``framesDecoded > 0`` in getStats, polled every 50 ms); median of 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from benchlib.console_browser import (
    CHROMIUM,
    ConsoleClicker,
    add_console_user,
    first_frame_ms,
    open_nav_page,
    rig_chromium_args,
    sign_in,
)
from benchlib.county_term import fill_term
from benchlib.rig import LessonRig

LEAD, RECEIVER = "bench-lead", "bench-receiver"
USER, PASSWORD = "county-admin", "bench console password"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def time_pages(rig: LessonRig, rounds: int) -> dict[str, Any]:
    """Sign in, warm each page once, then time every page ``rounds`` times."""
    clicker = ConsoleClicker(rig, USER, PASSWORD)
    try:
        await clicker.start()
        per_page: dict[str, list[float]] = {n: [] for n in clicker.names}
        for _ in range(rounds):
            for name in clicker.names:
                per_page[name].append(await open_nav_page(clicker.page, name))
        # What the classroom pickers fetch, against the whole inventory (the same rooms).
        sizes = {
            view: int(
                await clicker.page.evaluate(
                    f"async () => (await (await fetch('/api/v1/classrooms{query}')).text()).length"
                )
            )
            for view, query in (("inventory", ""), ("names", "?view=names"))
        }
        loads = []
        for _ in range(max(3, rounds // 4)):
            await clicker.page.goto(rig.base + "/")
            await clicker.page.wait_for_selector("#page[data-ready='dashboard']")
            loads.append(float(await clicker.page.evaluate("performance.now()")))
    finally:
        await clicker.stop()
    every = [ms for values in per_page.values() for ms in values]
    return {
        "page_ms_p50": round(statistics.median(every), 1),
        "page_ms_p95": round(pct(every, 0.95), 1),
        "pages": {n: round(statistics.median(v), 1) for n, v in per_page.items()},
        "dashboard_load_ms_p50": round(statistics.median(loads), 1),
        "classrooms_inventory_bytes": sizes["inventory"],
        "classrooms_names_bytes": sizes["names"],
    }


async def time_patrol(base: str, lesson_id: str, runs: int, args: list[str]) -> list[float]:
    """Seconds from a tile click to the first decoded frame, ``runs`` times (fresh page)."""
    from playwright.async_api import async_playwright

    out = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            await sign_in(page, base, USER, PASSWORD)
            for _ in range(runs):
                await open_nav_page(page, "patrol")
                out.append(await first_frame_ms(page, lesson_id) / 1000)
                await page.reload()  # hangs up every viewer (pagehide)
                await page.wait_for_selector("#page[data-ready='dashboard']")
        finally:
            await browser.close()
    return out


def start_lesson(rig: LessonRig) -> str:
    """Start both agents, schedule a lesson and wait until the lead camera reaches the
    relay; returns the lesson id."""
    lesson = rig.schedule(LEAD, [RECEIVER], 1.0, 600.0)

    def flows() -> bool:
        return any(
            x["id"] == lesson["id"]
            and any(f["classroom"] == LEAD and f["frames_in"] > 0 for f in x["feeds"])
            for x in rig.get("/live")
        )

    rig.wait("the lead camera in /api/v1/live", flows, 60)
    return str(lesson["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--lessons", type=int, default=10_000)
    parser.add_argument("--classrooms", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20, help="times each page is opened")
    parser.add_argument("--patrol-runs", type=int, default=3)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"bench-console: no Chromium at {CHROMIUM}; apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="cb-bench-console-") as tmp:
        rig = LessonRig(pathlib.Path(tmp) / "rig", heartbeat_s=0.5, prepare_s=2.0)
        try:
            rig.controller_state.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            stored = fill_term(rig.controller_state, args.lessons, args.classrooms)
            print(f"filled a term of {stored} lessons in {time.perf_counter() - started:.1f} s")
            tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
            add_console_user(rig, USER, "admin", PASSWORD)
            rig.start_controller()
            base = rig.base
            browser_args = rig_chromium_args(rig)
            pages = asyncio.run(time_pages(rig, args.rounds))
            for cid, token in tokens.items():
                rig.enrol_and_start_agent(cid, token)
            rig.wait_online([LEAD, RECEIVER])
            lesson_id = start_lesson(rig)
            firsts = asyncio.run(time_patrol(base, lesson_id, args.patrol_runs, browser_args))
        finally:
            rig.stop()
    figures = {
        **pages,
        "lessons": stored,
        "patrol_first_frame_s": round(statistics.median(firsts), 3),
        "patrol_first_frame_runs_s": [round(s, 3) for s in firsts],
    }
    print(
        f"console pages ({', '.join(pages['pages'])}; {args.rounds} each, {stored} lessons): "
        f"p50 {figures['page_ms_p50']} ms, p95 {figures['page_ms_p95']} ms (target < 300); "
        f"per page {pages['pages']}; cold load of the dashboard p50 "
        f"{pages['dashboard_load_ms_p50']} ms"
    )
    print(
        f"classrooms for a picker: {pages['classrooms_names_bytes']} bytes "
        f"(view=names), against {pages['classrooms_inventory_bytes']} for the whole inventory"
    )
    print(
        f"patrol: click to first decoded frame, median of {len(firsts)}: "
        f"{figures['patrol_first_frame_s']} s (runs {figures['patrol_first_frame_runs_s']}; "
        "target < 2 s)"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
