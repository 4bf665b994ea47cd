"""An open lesson for many viewers: HLS from the lead's own packets, on loopback.

The synthetic classroom's teacher camera (1280×720, 30 fps, x264 at the profile's
bitrate, its frame code burned in) and microphone are pushed over RTMP by the agent's
own push (``RtmpPush``: the H.264 as encoded, Opus→AAC) to the controller's HLS origin
(``controller.publishing``: Debian's nginx with the RTMP module, its ``on_publish`` gate,
the signed link a scheduler hands out). Then ``--viewers`` light viewers in
``--processes`` worker processes each poll the signed playlist every second and fetch
every new fragment, as a player does (one keep-alive connection each, a lean client:
``benchlib.lean_http``).

Figures (``--json``: the last line is one JSON object):
- ``hls_viewers``: viewers that fetched every fragment listed while they watched, each
  one in full before the next was due (within its own duration of the origin listing
  it, the viewer's polling delay included), with none skipped;
- ``hls_latency_s``: the median, over fragments, of the camera's burned-in capture time
  of a fragment's first frame to the moment the playlist listed it (polled every 50 ms);
  ``hls_latency_max_s`` the worst;
- ``hls_origin_cpu_pct``: nginx's CPU time over the viewing window, % of one core;
- ``served_mbit_s``: what the origin sent the viewers.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import json
import multiprocessing
import os
import pathlib
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO)]

import aiohttp  # noqa: E402
from benchlib.lean_http import LeanClient  # noqa: E402

from controller.publishing import links  # noqa: E402
from controller.publishing.gate import PublishGate  # noqa: E402
from controller.publishing.origin import HlsOrigin, OriginConfig, why_unavailable  # noqa: E402

LESSON = "open-lesson-1"
PROFILE = REPO / "hardware_profiles" / "synthetic.toml"
POLL_S = 1.0  # hls.js reloads a live playlist every target duration (3 s here) or half
_SEGMENT = re.compile(r"#EXTINF:([0-9.]+),\s*\n([0-9]+)\.ts")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_playlist(text: str) -> list[tuple[int, float]]:
    """(fragment number, duration s) of each fragment a live playlist lists."""
    return [(int(n), float(d)) for d, n in _SEGMENT.findall(text)]


async def _viewer(url: str, until: float, delay: float) -> dict[str, Any]:
    """One player: poll the playlist, fetch each new fragment, judge each in time."""
    await asyncio.sleep(delay)
    parts = urllib.parse.urlsplit(url)
    http = LeanClient(parts.hostname or "127.0.0.1", parts.port or 80)
    base = parts.path
    seen: dict[int, float] = {}  # fragment → when this viewer first saw it listed
    done: dict[int, float] = {}  # fragment → when this viewer had all of it
    fetched, late, missed, errors, got_bytes = 0, 0, 0, 0, 0
    worst_ms = 0.0
    last = -1
    try:
        while time.time() < until:
            polled = time.time()
            try:
                status, body, _ = await http.get(base + "index.m3u8", keep=True)
                listed = parse_playlist(body.decode()) if status == 200 else []
                errors += status != 200
            except (OSError, ConnectionError):
                errors += 1
                listed = []
            for n, duration in listed:
                if n <= last:
                    continue
                if last < 0:  # joining: start at the live edge, as a player does
                    if n != listed[-1][0]:
                        continue
                elif n > last + 1:
                    missed += n - last - 1  # gone from the playlist before it was fetched
                seen.setdefault(n, polled)
                try:
                    status, _, size = await http.get(f"{base}{n}.ts")
                    ok = status == 200
                except (OSError, ConnectionError):
                    ok, size = False, 0
                took = time.time() - seen[n]
                if not ok:
                    errors += 1
                    missed += 1
                else:
                    fetched += 1
                    done[n] = time.time()
                    got_bytes += size
                    worst_ms = max(worst_ms, took * 1000)
                    late += took > duration
                last = n
            await asyncio.sleep(max(0.0, POLL_S - (time.time() - polled)))
    finally:
        http.close()
    return {
        "fetched": fetched,
        "late": late,
        "missed": missed,
        "errors": errors,
        "bytes": got_bytes,
        "worst_ms": worst_ms,
        "done": done,
    }


def _viewer_priority() -> None:
    """The viewers stand for other machines: on this one they yield to the classroom's
    encoder and to nginx (niced), so a starved encoder does not stretch the fragments."""
    os.nice(10)


def viewers_process(url: str, count: int, start_at: float, until: float) -> list[dict[str, Any]]:
    """A worker process's share of the viewers (joining spread over two seconds)."""

    async def run() -> list[dict[str, Any]]:
        wait = max(0.0, start_at - time.time())
        return await asyncio.gather(
            *(_viewer(url, until, wait + 2.0 * i / max(1, count)) for i in range(count))
        )

    return asyncio.run(run())


def _first_code(segment: bytes) -> tuple[int, int] | None:
    import av

    from edge_agent.media import barcode

    with av.open(io.BytesIO(segment), mode="r", format="mpegts") as container:
        for frame in container.decode(container.streams.video[0]):
            code = barcode.read(frame.to_ndarray(format="gray"))
            if code is not None:
                return code
    return None


async def latency_monitor(
    url: str, until: float, listed: dict[int, tuple[float, float]]
) -> list[float]:
    """Capture → listed, per fragment: the playlist polled every 50 ms (when each fragment
    was first listed, and its duration, go to ``listed``)."""
    out: list[float] = []
    last: int | None = None
    async with aiohttp.ClientSession() as http:
        while time.time() < until:
            async with http.get(url + "index.m3u8") as r:
                fragments = parse_playlist(await r.text())
            listed_at = time.time()
            if last is None:  # those listed before the first poll: their time is unknown
                last = fragments[-1][0] if fragments else None
            for n, duration in fragments:
                if last is None or n <= last:
                    continue
                listed[n] = (listed_at, duration)
                async with http.get(f"{url}{n}.ts") as r:
                    body = await r.read()
                code = await asyncio.to_thread(_first_code, body)
                if code is not None:
                    out.append(listed_at - code[1] / 1000.0)
                last = n
            await asyncio.sleep(0.05)
    return out


def _cpu_s(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(viewers: int, seconds: float, processes: int) -> dict[str, Any]:
    """Run the origin, the push and the viewers; the figures."""
    from edge_agent.media.rtmp_push import RtmpPush
    from edge_agent.profile import load_profile
    from edge_agent.sources import build_runner

    missing = why_unavailable()
    if missing:
        raise SystemExit(missing)
    secret = secrets.token_hex(32)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-publish-"))
    config = OriginConfig(
        directory=work,
        secret=secret,
        rtmp_listen=f"127.0.0.1:{_free_port()}",
        http_listen=f"127.0.0.1:{_free_port()}",
    )
    gate = PublishGate(secret, lambda lesson: lesson == LESSON)
    await gate.start()
    origin = HlsOrigin(config)
    await asyncio.to_thread(origin.start, gate.port)
    loop = asyncio.get_running_loop()
    profile = load_profile(PROFILE).profile
    camera = build_runner(profile.device("teacher"), profile, loop)
    mic = build_runner(profile.device("mic"), profile, loop)
    camera.start()
    mic.start()
    push = RtmpPush(
        f"{config.push_url}/{LESSON}?key={links.stream_key(secret, LESSON)}",
        camera.bus,
        mic.bus,
        width=camera.width,
        height=camera.height,
        fps=camera.fps,
        request_keyframe=camera.request_keyframe,
    )
    url = config.viewer_base + links.public_path(secret, LESSON, int(time.time()) + 3600)
    pool = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("spawn"), initializer=_viewer_priority
    )
    try:
        await push.start()
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                async with http.get(url + "index.m3u8") as r:
                    if r.status == 200 and len(parse_playlist(await r.text())) >= 2:
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"no playlist after 30 s: {push.status()} {origin.log()}")
        start_at = time.time() + 3.0  # the workers' interpreters start meanwhile
        until = start_at + seconds
        shares = [viewers // processes + (i < viewers % processes) for i in range(processes)]
        jobs = [
            loop.run_in_executor(pool, viewers_process, url, n, start_at, until) for n in shares
        ]
        await asyncio.sleep(max(0.0, start_at + 2.5 - time.time()))  # all have joined
        assert origin.pid is not None
        cpu0, t0, frames0 = _cpu_s(origin.pid), time.monotonic(), push.status()["video_packets"]
        listed: dict[int, tuple[float, float]] = {}
        latencies = await latency_monitor(url, until, listed)
        cpu1, t1, frames1 = _cpu_s(origin.pid), time.monotonic(), push.status()["video_packets"]
        results = [v for share in await asyncio.gather(*jobs) for v in share]
        pushed = push.status()
    finally:
        pool.shutdown(cancel_futures=True)
        await push.stop()
        camera.stop()
        mic.stop()
        await asyncio.to_thread(origin.stop)
        await gate.stop()
        shutil.rmtree(work, ignore_errors=True)
    # In time: all of a fragment at the viewer before the next one is due, i.e. within the
    # fragment's duration of the origin listing it (the viewer's polling delay counts).
    for v in results:
        v["strict_late"] = sum(
            1 for n, at in v["done"].items() if n in listed and at > sum(listed[n])
        )
    good = [
        v
        for v in results
        if v["fetched"] >= 3 and not (v["strict_late"] or v["late"] or v["missed"])
    ]
    durations = [d for _, d in listed.values()]
    return {
        "viewers": viewers,
        "hls_viewers": len(good),
        "fragments_per_viewer_min": min(v["fetched"] for v in results),
        "late_fetches": sum(v["strict_late"] for v in results),
        "late_after_seen": sum(v["late"] for v in results),
        "missed_fragments": sum(v["missed"] for v in results),
        "http_errors": sum(v["errors"] for v in results),
        "worst_fetch_ms": round(max(v["worst_ms"] for v in results), 1),
        "hls_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "hls_latency_max_s": round(max(latencies), 2) if latencies else None,
        "fragments_timed": len(latencies),
        "fragment_s_mean": round(statistics.mean(durations), 2) if durations else None,
        "camera_fps": round((frames1 - frames0) / (t1 - t0), 1),
        "hls_origin_cpu_pct": round(100.0 * (cpu1 - cpu0) / (t1 - t0), 1),
        "served_mbit_s": round(sum(v["bytes"] for v in results) * 8 / seconds / 1e6, 1),
        "seconds": seconds,
        "push_reconnects": pushed.get("reconnects", 0),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4, help="viewer worker processes")
    args = parser.parse_args()
    doc = asyncio.run(bench(args.viewers, args.seconds, args.processes))
    for key, value in doc.items():
        print(f"{key:>26}: {value}")
    if args.json:
        print(json.dumps(doc))


if __name__ == "__main__":
    main()
