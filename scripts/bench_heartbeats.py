"""What writing heartbeats costs the controller, per classroom of a batch.

``--rooms`` classrooms (2,000: a second of 10,000 agents beating every 5 s) are registered
in a real database: a SQLite file, and a PostgreSQL server of the bench's own (``pg_ctl``
in a temporary directory, as the tests start it) or ``--database URL``. Each gets a
heartbeat shaped as the agent sends it (devices, media tracks, clock, disk); some carry
trouble so the alert paths run: a lost camera, 10 % loss on a track, a readiness reason
an hour's lesson turns into an alert, uploads waiting behind one open for two hours. The
batch is then written ``--batches`` times through the controller's ``HeartbeatWriter``
(each time every classroom's figures move a little, as real ones do), and one classroom
in twelve is due a history sample each time (a sample a minute, a beat every 5 s).

Figures per engine (``--json``: the last line is one JSON object):
- ``cpu_ms_per_room``: this process's CPU time (all threads) per classroom written;
- ``wall_ms_per_batch`` and ``batches_per_s``: how many such batches one core could
  write a second (1000 / CPU ms per batch); PostgreSQL's own work is not counted;
- ``alerts_active``: alert rows active after the last batch (a check that the paths ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO)]

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from controller.agents.health_history import HealthSampler  # noqa: E402
from controller.agents.heartbeat_writer import HeartbeatWriter  # noqa: E402
from controller.db.models import AlertState, Classroom, Lesson, UploadSession  # noqa: E402
from controller.db.session import make_engine, migrate, sessions, utcnow  # noqa: E402
from protocols.messages import DeviceState, Heartbeat, TrackStats  # noqa: E402

SAMPLED_SHARE = 12  # one classroom in this many is due a history sample each batch


def _no_offline(_db: Session, _cid: str, _at: datetime) -> None:
    return None


def heartbeat(i: int, seq: int, rng: random.Random) -> Heartbeat:
    """Classroom ``i``'s heartbeat number ``seq``: an idle or teaching classroom PC, with
    trouble for some (i % 20: 1 lost camera, 2 loss, 3 readiness, 4 uploads stuck)."""
    trouble = i % 20
    devices = {
        "teacher": DeviceState(state="lost" if trouble == 1 else "ok"),
        "students": DeviceState(state="ok"),
        "board": DeviceState(state="ok"),
        "mic": DeviceState(state="ok", level_dbfs=round(rng.uniform(-60, -20), 1)),
    }
    media = [
        TrackStats(
            track=name,
            direction="send",
            frames=seq * 75,
            bytes=seq * 600_000,
            fps=15.0,
            bitrate_bps=round(rng.uniform(550_000, 650_000)),
            loss_pct=10.0 if trouble == 2 and name == "teacher" else round(rng.uniform(0, 1), 2),
            rtt_ms=round(rng.uniform(8, 40), 1),
        )
        for name in ("teacher", "students", "board")
    ]
    media.append(TrackStats(track="audio", direction="recv", frames=seq * 250, fps=50.0))
    return Heartbeat(
        seq=seq,
        cpu_pct=round(rng.uniform(3.0, 25.0), 1),
        mem_pct=round(rng.uniform(30.0, 45.0), 1),
        disk_free_bytes=400 * 10**9 - seq * 4096,
        disk_pct=round(rng.uniform(18.0, 19.0), 2),
        temperature_c=round(rng.uniform(42.0, 55.0), 1),
        devices=devices,
        media=media,
        lesson_id=None,
        clock_offset_ms=round(rng.uniform(-3, 3), 1),
        rtt_ms=round(rng.uniform(1, 6), 2),
        readiness={"camera:board": "the board camera shows black"} if trouble == 3 else {},
        uploads_pending=3 if trouble == 4 else 0,
        net_bytes_sent=seq * 2_000_000,
        net_bytes_recv=seq * 500_000,
        audio_level_dbfs=round(rng.uniform(-60, -20), 1),
    )


def populate(url: str, rooms: list[str]) -> None:
    """The classrooms, a lesson within the hour for the readiness ones, an upload stuck
    for two hours for the uploading ones."""
    migrate(url)
    engine = make_engine(url)
    now = utcnow()
    with sessions(engine)() as db:
        db.add_all(
            Classroom(id=c, name=c, school=f"school-{i // 10}", inventory=[], health={})
            for i, c in enumerate(rooms)
        )
        db.flush()
        for i, cid in enumerate(rooms):
            if i % 20 in (3, 4):
                db.add(
                    Lesson(
                        id=f"L{i:05d}",
                        lead_classroom_id=cid,
                        start_at=now + timedelta(minutes=20),
                        end_at=now + timedelta(minutes=65),
                        created_at=now,
                    )
                )
        db.flush()
        for i, cid in enumerate(rooms):
            if i % 20 == 4:
                db.add(
                    UploadSession(
                        id=f"U{i:05d}",
                        lesson_id=f"L{i:05d}",
                        classroom_id=cid,
                        rel="teacher/000001.ts",
                        key=f"k/{i}",
                        size=1,
                        sha256="0" * 64,
                        backend_id="b",
                        part_size=1,
                        created_at=now - timedelta(hours=2),
                    )
                )
        db.commit()
    engine.dispose()


def run(url: str, n: int, batches: int) -> dict[str, Any]:
    """Populate ``url`` and write ``batches`` batches; the figures."""
    rooms = [f"room-{i:05d}" for i in range(n)]
    populate(url, rooms)
    engine = make_engine(url)
    factory = sessions(engine)
    sampler = HealthSampler()
    writer = HeartbeatWriter(factory, sampler, _no_offline)
    rng = random.Random(14)
    cpu: list[float] = []
    wall: list[float] = []

    async def go() -> None:
        for seq in range(batches + 1):  # the first warms up (and samples everyone)
            for i, cid in enumerate(rooms):
                writer.beat(cid, heartbeat(i, seq, rng))
            # A sample a minute at a beat every 5 s: one classroom in twelve is due now.
            for i, cid in enumerate(rooms):
                if i % SAMPLED_SHARE == seq % SAMPLED_SHARE:
                    sampler._last.pop(cid, None)  # the bench plays the clock
            c0, w0 = time.process_time(), time.perf_counter()
            await writer.flush()
            c1, w1 = time.process_time(), time.perf_counter()
            if seq:
                cpu.append(c1 - c0)
                wall.append(w1 - w0)
        await writer.stop()

    asyncio.run(go())
    with factory() as db:
        active = db.scalar(select(func.count()).where(AlertState.active.is_(True)))
    engine.dispose()
    cpu_batch = sorted(cpu)[len(cpu) // 2]
    wall_batch = sorted(wall)[len(wall) // 2]
    return {
        "rooms": n,
        "batches": batches,
        "cpu_ms_per_room": round(cpu_batch * 1000 / n, 4),
        "cpu_ms_per_batch": round(cpu_batch * 1000, 1),
        "wall_ms_per_batch": round(wall_batch * 1000, 1),
        "batches_per_s": round(1 / cpu_batch, 2) if cpu_batch else None,
        "errors": writer.errors,
        "alerts_active": active,
    }


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--rooms", type=int, default=2000, help="classrooms a batch")
    parser.add_argument("--batches", type=int, default=10, help="batches measured")
    parser.add_argument("--engines", default="sqlite,postgresql", help="which to measure")
    parser.add_argument("--database", help="an empty database URL to use instead")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_avg": [round(x, 2) for x in os.getloadavg()]}
    if args.database:
        results["given"] = run(args.database, args.rooms, args.batches)
    else:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                with tempfile.TemporaryDirectory(prefix="bench-heartbeats-") as tmp:
                    results["sqlite"] = run(f"sqlite:///{tmp}/c.sqlite3", args.rooms, args.batches)
            elif engine == "postgresql":
                from pg_server import start_server

                server = start_server()
                try:
                    url = server.url(server.create_database())
                    results["postgresql"] = run(url, args.rooms, args.batches)
                finally:
                    server.stop()
            else:
                parser.error(f"--engines: {engine!r} is neither sqlite nor postgresql")
    for name, figures in results.items():
        if name == "load_avg":
            print(f"load average {figures}")
            continue
        print(
            f"{name}: {figures['cpu_ms_per_room']:.3f} CPU ms a classroom, "
            f"{figures['cpu_ms_per_batch']:.0f} CPU ms and {figures['wall_ms_per_batch']:.0f} "
            f"ms wall a batch of {figures['rooms']}, {figures['batches_per_s']} batches/s "
            f"on one core; {figures['alerts_active']} alerts active, "
            f"{figures['errors']} errors"
        )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
