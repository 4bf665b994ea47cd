"""bench-capacity: concurrent 1+1 lessons through the built-in relay and through Janus.

For each backend the load rises (1, 2, 4, 8, 12, 16 lessons by default) until a load
fails (worst lesson's delivery < 99 % or teacher-camera p95 >= 150 ms). At each load it
measures, over a fixed window: the media plane's CPU (the relay worker process; the
janus process), the controller's (the relay's parent side: signalling and figures; the
controller's Janus media plane: health watch, room creation and destruction), the load
generator's own, every lesson's delivery and the teacher camera's latency.

The load is one process (benchlib.loadgen): clips encoded once, sent packet by packet,
receivers reading an SEI stamp instead of decoding. At one lesson each backend also
carries classrooms that publish as the agent does (capture, encode per frame,
EncodedTrack, aiortc's sender and jitter buffer), to check the generator against them.

Then the console figure (benchlib.saturated_console): a whole controller with a county's
term in its database, idle and then with the relay's first failing load on its own relay
process, while a signed-in Chromium opens the console's pages in turn and the dashboard's
API is fetched every 100 ms. ``--console-lessons 0`` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib.capacity_backends import LEAD, RECEIVER, Builtin, Gen, Janus, Lesson
from benchlib.clip import encode
from benchlib.console_browser import ConsoleClicker
from benchlib.loadgen import Tally
from benchlib.saturated_console import ControllerBuiltin, chromium_missing, console_clicker

from edge_agent.media.counters import percentile

LOADS = (1, 2, 4, 8, 12, 16, 20, 24)
DELIVERY_MIN = 0.99
P95_MAX_MS = 150.0
SETTLE_S = 4.0
GRACE_S = 0.5  # a frame later than this is as good as lost in a live lesson
CONSOLE_WINDOW_S = 20.0  # the console is timed over at least this long
TERM_LESSONS, CLASSROOMS = 10_000, 500  # a county's term in the whole controller's database
# Runs over a load's window until its event is set; returns console page times by page.
During = Callable[[asyncio.Event], Awaitable[dict[str, list[float]]]]


def schedstat_s(pid: int, field: int) -> tuple[float, bool]:
    """A schedstat field summed over a process's live threads, in seconds: 0 is time on a
    CPU, 1 is time runnable but waiting for one (the machine's other load)."""
    total, seen = 0, False
    with contextlib.suppress(OSError):
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[field])
                seen = True
    return total / 1e9, seen


def udp_receive_errors() -> int:
    """Datagrams this network namespace dropped for full receive buffers, so far."""
    lines = [x.split() for x in pathlib.Path("/proc/net/snmp").read_text().splitlines()]
    udp = [x for x in lines if x and x[0] == "Udp:"]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def cpu_s(pid: int) -> float:
    """CPU seconds of a process's live threads, to the nanosecond (schedstat), or from
    its 10 ms ticks where schedstat is missing; 0 if it is gone."""
    total, seen = schedstat_s(pid, 0)
    if seen:
        return total
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(t.user + t.system)


def pct(samples: list[float], at: float) -> float:
    """Nearest-rank percentile; 0 with no samples."""
    return float(percentile(samples, at) or 0.0)


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread's name and CPU seconds, from /proc."""
    out: dict[int, tuple[str, float]] = {}
    try:
        threads = psutil.Process(pid).threads()
    except psutil.NoSuchProcess:
        return out
    for t in threads:
        try:
            name = pathlib.Path(f"/proc/{pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            name = "?"
        out[t.id] = (name, t.user_time + t.system_time)
    return out


def thread_usage(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float
) -> dict[str, Any]:
    """Per-thread % of a core over the window, busiest first."""
    busy = sorted(
        (
            (round((cpu - before.get(tid, (name, 0.0))[1]) * 100 / seconds, 1), name)
            for tid, (name, cpu) in after.items()
        ),
        reverse=True,
    )
    total = sum(p for p, _ in busy)
    return {
        "threads": len(after),
        "busiest_pct": [{"name": n, "pct": p} for p, n in busy[:8] if p > 0],
        "threads_over_5_pct": sum(1 for p, _ in busy if p > 5),
        "top_thread_pct": busy[0][0] if busy else 0.0,
        "top_thread_share": round(busy[0][0] / total, 2) if busy and total > 0 else None,
    }


async def ping_loop(
    url: str,
    times: list[float],
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> None:
    """Time a page of the controller side every 100 ms."""
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            t0 = time.monotonic()
            try:
                async with http.get(
                    url, timeout=aiohttp.ClientTimeout(total=5), ssl=context or False
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url} answered {resp.status}")
                times.append((time.monotonic() - t0) * 1000)
            except (aiohttp.ClientError, TimeoutError):
                times.append(5000.0)
            await asyncio.sleep(0.1)


def lesson_figures(
    lesson: Lesson,
    tally: Tally,
    sent0: dict[int, int],
    recv0: dict[int, int],
    sent1: dict[int, int],
    recv1: dict[int, int],
) -> dict[str, Any]:
    """A lesson's worst stream's delivery and its teacher camera's latency."""
    worst = 1.0
    for sid in lesson.streams:
        sent = sent1.get(sid, 0) - sent0.get(sid, 0)
        got = recv1.get(sid, 0) - recv0.get(sid, 0)
        worst = min(worst, min(1.0, got / sent) if sent else 0.0)
    lat = tally.latency_ms.get(lesson.teacher, [])
    return {
        "delivery": worst,
        "p50_ms": round(pct(lat, 50), 1) if lat else None,
        "p95_ms": round(pct(lat, 95), 1) if lat else None,
    }


async def run_load(
    backend: Builtin | Janus, gen: Gen, n: int, window: float, during: During | None = None
) -> dict[str, Any]:
    """N lessons at once: CPU of each party, delivery and latency over the window; with
    ``during``, that runs over the window too (its stop event set at the window's end)."""
    tally = gen.tally
    me = os.getpid()
    c0 = cpu_s(backend.controller_pid)
    lessons: list[Lesson] = []
    try:
        for i in range(n):
            lessons.append(await backend.open(i))
        for lesson in lessons:
            tally.latency_ms[lesson.teacher] = []
        await asyncio.sleep(SETTLE_S)
        for lesson in lessons:
            tally.latency_ms[lesson.teacher].clear()
        tally.lateness_ms.clear()
        pings: list[float] = []
        pinger = (
            asyncio.create_task(
                ping_loop(backend.ping_url, pings, backend.ping_headers, backend.ping_ssl)
            )
            if backend.ping_url
            else None
        )
        # Received counts are read GRACE_S after sent ones at both ends of the window, so a
        # frame in flight at either end is neither lost nor counted twice.
        sent0 = tally.snapshot()[0]
        await asyncio.sleep(GRACE_S)
        recv0 = tally.snapshot()[1]
        m0, k0, g0 = cpu_s(backend.media_pid), cpu_s(backend.controller_pid), cpu_s(me)
        th0 = thread_cpu(backend.media_pid)
        w0, u0 = schedstat_s(backend.media_pid, 1)[0], udp_receive_errors()
        t0 = time.monotonic()
        stop = asyncio.Event()
        side = asyncio.create_task(during(stop)) if during is not None else None
        await asyncio.sleep(window)
        elapsed = time.monotonic() - t0
        stop.set()
        m1, k1, g1 = cpu_s(backend.media_pid), cpu_s(backend.controller_pid), cpu_s(me)
        th1 = thread_cpu(backend.media_pid)
        w1, u1 = schedstat_s(backend.media_pid, 1)[0], udp_receive_errors()
        sent1 = tally.snapshot()[0]
        await asyncio.sleep(GRACE_S)
        recv1 = tally.snapshot()[1]
        if pinger is not None:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)
        during_times = await side if side is not None else None
        per = [lesson_figures(x, tally, sent0, recv0, sent1, recv1) for x in lessons]
        lateness = list(tally.lateness_ms)
    finally:
        for lesson in lessons:
            try:
                await backend.close(lesson)
            except Exception as err:  # noqa: BLE001 - one broken lesson must not keep the rest open
                print(f"  closing lesson {lesson.index}: {err}", flush=True)
    # The controller's share counts the lessons' set-up and end too, spread over the window
    # (a real lesson lasts 40 minutes, so this overstates it).
    c1 = cpu_s(backend.controller_pid)
    media_pct = (m1 - m0) * 100 / elapsed
    p95s = [p["p95_ms"] for p in per if p["p95_ms"] is not None]
    result: dict[str, Any] = {
        "lessons": n,
        "media_cpu_pct": round(media_pct, 1),
        "media_cpu_pct_per_lesson": round(media_pct / n, 2),
        "controller_cpu_pct_window": round((k1 - k0) * 100 / elapsed, 2),
        "controller_cpu_pct_with_setup": round((c1 - c0) * 100 / elapsed, 2),
        "controller_cpu_pct_per_lesson": round((c1 - c0) * 100 / elapsed / n, 3),
        "generator_cpu_pct": round((g1 - g0) * 100 / elapsed, 1),
        "generator_cpu_pct_per_lesson": round((g1 - g0) * 100 / elapsed / n, 1),
        "generator_late_p95_ms": round(pct(lateness, 95), 1),
        "delivery_worst": round(min(p["delivery"] for p in per), 4),
        "delivery_mean": round(sum(p["delivery"] for p in per) / n, 4),
        "p50_ms_worst": max((p["p50_ms"] or 0.0) for p in per),
        "p95_ms_worst": max(p95s) if len(p95s) == n else None,
        "media_threads": thread_usage(th0, th1, elapsed),
        # Runnable but waiting for a core: the machine's other load, not the media plane's.
        "media_runqueue_wait_pct": round((w1 - w0) * 100 / elapsed, 1),
        "udp_receive_buffer_drops": u1 - u0,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if pings:
        result["controller_page_p95_ms"] = round(pct(pings, 95), 1)
    if during_times is not None:
        result["console_pages_ms"] = during_times
    if gen.real:
        rates = [round((recv1[k] - recv0.get(k, 0)) / elapsed, 1) for k in recv1 if k < 0]
        result["real_frames_per_s_by_receiver"] = rates
    return result


def page_figures(times: dict[str, list[float]]) -> dict[str, Any]:
    """Console page times: p50 and p95 over every page opened, p95 per page."""
    every = [ms for values in times.values() for ms in values]
    return {
        "pages_opened": len(every),
        "page_p50_ms": round(pct(every, 50), 1),
        "page_p95_ms": round(pct(every, 95), 1),
        "page_max_ms": round(max(every), 1) if every else 0.0,
        "page_p95_ms_by_page": {n: round(pct(v, 95), 1) for n, v in times.items()},
    }


async def idle_pages(clicker: ConsoleClicker, seconds: float) -> dict[str, list[float]]:
    """The console's pages opened for ``seconds`` with no lesson on the relay."""
    stop = asyncio.Event()
    task = asyncio.create_task(clicker.loop(stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def console_saturated(
    gen: Gen, n: int, window: float, term_lessons: int, classrooms: int
) -> dict[str, Any]:
    """A whole controller's console in Chromium: idle, then with ``n`` lessons on its
    built-in relay (a load that saturates it)."""
    with tempfile.TemporaryDirectory(prefix="cb-bench-capacity-console-") as tmp:
        backend = ControllerBuiltin(gen, pathlib.Path(tmp) / "rig", term_lessons, classrooms)
        await backend.start()
        clicker = console_clicker(backend)
        try:
            await clicker.start()
            idle = page_figures(await idle_pages(clicker, window))
            print(f"console idle: {json.dumps(idle)}", flush=True)
            gen.real, gen.tally = False, Tally()
            r = await run_load(backend, gen, n, window, during=clicker.loop)
        finally:
            await clicker.stop()
            await backend.stop()
    r["passed"] = passed(r)
    pages = page_figures(r.pop("console_pages_ms"))
    out = {
        "term_lessons": backend.stored,
        "classrooms": classrooms,
        "idle": idle,
        "saturated": pages,
        "load": r,
    }
    print(f"console with the relay saturated (x{n}): {json.dumps(out)}", flush=True)
    return out


def passed(r: dict[str, Any]) -> bool:
    """Delivery >= 99 % in every lesson and the worst teacher-camera p95 < 150 ms."""
    p95 = r["p95_ms_worst"]
    return bool(r["delivery_worst"] >= DELIVERY_MIN and p95 is not None and p95 < P95_MAX_MS)


async def run_backend(
    kind: type[Builtin] | type[Janus], gen: Gen, loads: tuple[int, ...], window: float
) -> dict[str, Any]:
    """The real-agent check at one lesson, then the ramp until a load fails."""
    backend = kind(gen)
    await backend.start()
    out: dict[str, Any] = {"loads": {}}
    try:
        gen.real, gen.tally = True, Tally()
        out["real_agents_1"] = real = await run_load(backend, gen, 1, window)
        print(f"{backend.name} real agents x1: {json.dumps(real)}", flush=True)
        gen.real = False
        for n in loads:
            gen.tally = Tally()
            r = await run_load(backend, gen, n, window)
            r["passed"] = passed(r)
            out["loads"][str(n)] = r
            print(f"{backend.name} x{n}: {json.dumps(r)}", flush=True)
            if not r["passed"]:
                break
    finally:
        await backend.stop()
    ok = [r for r in out["loads"].values() if r["passed"]]
    chosen = (
        max(ok, key=lambda r: r["lessons"])
        if ok
        else out["loads"]["1"]
        if "1" in out["loads"]
        else next(iter(out["loads"].values()))
    )
    out["max_lessons"] = chosen["lessons"] if ok else 0
    out["media_cpu_pct_per_lesson"] = chosen["media_cpu_pct_per_lesson"]
    out["controller_cpu_pct_per_lesson"] = chosen["controller_cpu_pct_per_lesson"]
    out["figures_from_load"] = chosen["lessons"]
    gen1 = out["loads"].get("1")
    if gen1 is not None and gen1["media_cpu_pct"] > 0:
        out["real_over_generator_media_cpu_1"] = round(
            real["media_cpu_pct"] / gen1["media_cpu_pct"], 2
        )
    return out


async def bench(
    loads: tuple[int, ...], window: float, backends: list[str], console_lessons: int | None
) -> dict[str, Any]:
    """Encode the clips once, then run each backend; then, unless ``console_lessons`` is
    0, the console figure on a whole controller with its relay saturated."""
    t0 = time.monotonic()
    clips = {(True, s.name): encode(s) for s in LEAD} | {
        (False, s.name): encode(s) for s in RECEIVER
    }
    print(
        f"clips encoded once in {time.monotonic() - t0:.1f} s: "
        + ", ".join(
            f"{'lead' if lead else 'recv'}/{name} {len(c.frames)} frames {c.payload_bytes} B"
            for (lead, name), c in clips.items()
        ),
        flush=True,
    )
    gen = Gen(clips, Tally())
    results: dict[str, Any] = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "window_s": window,
    }
    for name in backends:
        kind = Builtin if name == "builtin" else Janus
        results[name] = await run_backend(kind, gen, loads, window)
    if console_lessons != 0:
        # The relay's first failing load saturates it; without a ramp, the largest load.
        ramp = results.get("builtin", {}).get("loads", {})
        failed = [int(k) for k, x in ramp.items() if not x["passed"]]
        n = console_lessons or (min(failed) if failed else max(loads))
        results["console"] = await console_saturated(
            gen, n, max(window, CONSOLE_WINDOW_S), TERM_LESSONS, CLASSROOMS
        )
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def summary(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys, with the per-load figures."""
    out: dict[str, Any] = {
        "started_utc": r["started_utc"],
        "loadavg_start": r["loadavg_start"],
        "loadavg_end": r["loadavg_end"],
    }
    for name in ("builtin", "janus"):
        b = r.get(name)
        if b is None:
            continue
        media = b["media_cpu_pct_per_lesson"]
        out[f"controller_cpu_pct_per_lesson_{name}"] = b["controller_cpu_pct_per_lesson"]
        out[f"media_cpu_pct_per_lesson_{name}"] = media
        out[f"lessons_per_core_{name}"] = round(100 / media, 2) if media else None
        out[f"max_lessons_{name}"] = b["max_lessons"]
        out[f"real_over_generator_media_cpu_{name}"] = b.get("real_over_generator_media_cpu_1")
        out[f"real_agents_media_cpu_pct_1_{name}"] = b["real_agents_1"]["media_cpu_pct"]
        out[f"per_load_{name}"] = {
            n: {
                k: x[k]
                for k in (
                    "delivery_worst",
                    "p95_ms_worst",
                    "media_cpu_pct",
                    "controller_cpu_pct_per_lesson",
                    "generator_cpu_pct",
                    "generator_cpu_pct_per_lesson",
                    "generator_late_p95_ms",
                    "loadavg",
                    "media_runqueue_wait_pct",
                    "udp_receive_buffer_drops",
                    "passed",
                )
            }
            | {
                "media_top_thread_share": x["media_threads"]["top_thread_share"],
                "media_top_thread_pct": x["media_threads"]["top_thread_pct"],
                "media_threads_over_5_pct": x["media_threads"]["threads_over_5_pct"],
            }
            | (
                {"controller_page_p95_ms": x["controller_page_p95_ms"]}
                if "controller_page_p95_ms" in x
                else {}
            )
            for n, x in b["loads"].items()
        }
    c = r.get("console")
    if c is not None:
        load = c["load"]
        out["console_page_p95_ms_builtin_saturated"] = c["saturated"]["page_p95_ms"]
        out["console_page_p95_ms_idle"] = c["idle"]["page_p95_ms"]
        out["console_api_dashboard_p95_ms_builtin_saturated"] = load.get("controller_page_p95_ms")
        out["console_saturated"] = {
            "lessons": load["lessons"],
            "relay_cpu_pct": load["media_cpu_pct"],
            "controller_cpu_pct": load["controller_cpu_pct_window"],
            "delivery_worst": load["delivery_worst"],
            "p95_ms_worst": load["p95_ms_worst"],
            "passed": load["passed"],
            "media_runqueue_wait_pct": load["media_runqueue_wait_pct"],
            "loadavg": load["loadavg"],
            "term_lessons": c["term_lessons"],
            "pages_opened": c["saturated"]["pages_opened"],
            "page_p50_ms": c["saturated"]["page_p50_ms"],
            "page_max_ms": c["saturated"]["page_max_ms"],
            "page_p95_ms_by_page": c["saturated"]["page_p95_ms_by_page"],
            "idle_page_p95_ms_by_page": c["idle"]["page_p95_ms_by_page"],
        }
    lb, lj = out.get("lessons_per_core_builtin"), out.get("lessons_per_core_janus")
    out["lessons_per_core_ratio_janus_over_builtin"] = round(lj / lb, 2) if lb and lj else None
    return out


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per load")
    parser.add_argument(
        "--loads", default=",".join(map(str, LOADS)), help="lesson counts, comma-separated"
    )
    parser.add_argument(
        "--backend", choices=("both", "builtin", "janus"), default="both", help="which to run"
    )
    parser.add_argument(
        "--console-lessons",
        type=int,
        default=None,
        help="lessons on the relay while the console is timed (default: the relay's first "
        "failing load; 0: skip the console figure)",
    )
    args = parser.parse_args()
    loads = tuple(int(x) for x in args.loads.split(","))
    backends = ["builtin", "janus"] if args.backend == "both" else [args.backend]
    console = args.console_lessons
    if console != 0 and chromium_missing():
        print(f"bench-capacity: console figure skipped: {chromium_missing()}", flush=True)
        console = 0
    r = asyncio.run(bench(loads, args.seconds, backends, console))
    s = summary(r)
    print("\nbackend  lessons  delivery  p95 ms  media %  ctrl %/lesson  gen %  gen late p95")
    for name in backends:
        for n, x in r[name]["loads"].items():
            print(
                f"{name:<8} {n:>7} {x['delivery_worst']:>9.1%} {x['p95_ms_worst'] or '-':>7} "
                f"{x['media_cpu_pct']:>8} {x['controller_cpu_pct_per_lesson']:>14} "
                f"{x['generator_cpu_pct']:>6} {x['generator_late_p95_ms']:>13}"
            )
    for k, v in s.items():
        if not k.startswith("per_load"):
            print(f"  {k}: {v}")
    if args.json:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
