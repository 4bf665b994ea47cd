"""The control plane under a fleet: one or two controllers, thousands of simulated agents.

One real controller (``classroom-controller serve``, its own process, SQLite in its state
directory), or with ``--controllers 2`` two of them on one PostgreSQL (``--database URL``,
else a private server started with Debian's ``pg_ctl``, as the tests do), the fleet's
processes split between them; and a light fleet of simulated agents
(``benchlib.agent_fleet``, several processes of asyncio agents, one CURVE DEALER each) on
the real protocol: keys enrolled through the controller's enrolment code
(``benchlib.fleet_enrolment``), a ``Register``, a ``Heartbeat`` every ``--heartbeat-s``,
and answers to commands. Once every agent is registered and beating, the controller's CPU
is measured over ``--duration-s`` while commands go to random agents the way a technician
sends one: ``POST /api/v1/classrooms/{id}/actions`` (pull the logs) with an admin token,
timed until the agent's answer comes back through the controller.

Figures (``--json``: the last line is one JSON object):
- ``agents``, ``heartbeat_s``, ``duration_s``, ``database``;
- ``controller_cpu_pct``: the controller process's mean CPU over the window, % of a core
  (``controller_cpu_peak_pct``: its busiest 5 s; ``controller_cpu_wait_pct``: how long
  its threads waited, runnable, for a CPU the machine's other work held, % of the window);
- ``command_rtt_p50_ms`` / ``command_rtt_p99_ms``: the action's HTTP round trip, agent's
  answer included; ``command_failures``: actions not answered with 200;
- ``offline_false``: agents the controller declared offline (its
  ``classbridge_agents_declared_offline_total``) although every simulated agent kept
  beating, plus fleet agents it does not list online at the end;
- ``heartbeat_batch_s_mean`` / ``heartbeat_batch_s_max``: a batch transaction's wall time
  over the window, and the longest since start (with two controllers, the two summed); on
  SQLite, how long an API write (an audit row) may queue behind the batch's write lock;
- ``heartbeat_batches_per_s``: the controller's ``classbridge_heartbeat_batches_total``
  over the window (at most 1 is the target); ``heartbeat_rows_per_s`` the classrooms'
  rows those batches wrote, ``heartbeat_quiet_skipped_per_s`` the quiet heartbeats not
  written because their row was refreshed within 15 s;
- ``failover_s`` (two controllers): the leader is killed (SIGKILL) after the window, just
  (0.2 s) before a lesson falls due; the seconds from when it was due (or the kill, if
  later) until the other controller made it live (its ``live`` event);
- with two controllers, ``controller_cpu_pct`` is the busier one's and
  ``controller_cpu_pct_each`` lists both; commands all go to the first controller's API,
  so those for the other's agents are routed (LISTEN/NOTIFY);
- ``sim_*``: the fleet's own CPU and lateness, to show it was not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import psutil

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO), str(REPO / "tests")]

from benchlib.agent_fleet import FleetSpec  # noqa: E402
from benchlib.cluster_rig import ClusterRig  # noqa: E402
from benchlib.fleet_enrolment import enrol_fleet  # noqa: E402
from benchlib.rig import LessonRig, RigError  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

FLEET = REPO / "scripts" / "benchlib" / "agent_fleet.py"
FAILOVER_NOTE = "one controller: no failover to time (run with --controllers 2)"
# The failover lesson is scheduled this long before it is due: the CLI that schedules it
# took over 15 s to start on a machine at load average 30.
FAILOVER_LEAD_IN_S = 30.0
FAILOVER_KILL_AHEAD_S = 0.2  # and the leader killed this long before it is due
ACTION = {"action": "logs", "lines": 3}
ACTION_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Settings:
    """One bench run."""

    agents: int = 1000
    heartbeat_s: float = 5.0
    duration_s: float = 120.0
    commands_per_s: float = 3.0
    ramp_per_s: float = 50.0
    agents_per_process: int = 2500
    settle_s: float | None = None  # None: two heartbeat intervals
    py_spy: pathlib.Path | None = None  # record the controller over the window (raw stacks)
    enrol: str = "bulk"  # "wire": each agent enrols its key on the enrolment socket
    controllers: int = 1  # 2: two controllers on PostgreSQL, and the failover timed
    database: str | None = None  # PostgreSQL URL for two; None: a private server
    failover_lead_in_s: float = FAILOVER_LEAD_IN_S


class Fleet:
    """The simulator processes and their status files."""

    def __init__(self, rig: LessonRig, settings: Settings) -> None:
        self._rig = rig
        self._settings = settings
        self.status_files: list[pathlib.Path] = []

    def start(self, server_public: str, identities: list[Any], endpoints: list[str]) -> None:
        """One process per ``agents_per_process`` agents (at least one per controller),
        each dialling one of ``endpoints`` in turn."""
        per = min(self._settings.agents_per_process, math.ceil(len(identities) / len(endpoints)))
        for k in range(math.ceil(len(identities) / per)):
            spec = FleetSpec(
                controller=endpoints[k % len(endpoints)],
                controller_public_key=server_public,
                agents=identities[k * per : (k + 1) * per],
                first_index=k * per,
                ramp_per_s=self._settings.ramp_per_s,
            )
            spec_path = self._rig.root / f"fleet-{k}.json"
            status = self._rig.root / f"fleet-{k}.status.json"
            spec.save(spec_path)
            self.status_files.append(status)
            self._rig.spawn(f"fleet-{k}", sys.executable, str(FLEET), str(spec_path), str(status))

    def statuses(self) -> list[dict[str, Any]]:
        """Each process's last counters (an empty one before its first write)."""
        out = []
        for path in self.status_files:
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                out.append({})
        return out

    def total(self, key: str) -> float:
        """A counter summed over the processes."""
        return float(sum(s.get(key, 0) for s in self.statuses()))

    def check_alive(self) -> None:
        """Raise if a simulator process died."""
        for name, proc in self._rig.procs.items():
            if proc.poll() is not None:
                raise RigError(f"{name} exited with {proc.returncode}; logs in {self._rig.logs}")


def scrape(rig: LessonRig) -> dict[str, float]:
    """The controller's unlabelled Prometheus samples, by name (with several controllers,
    each sample summed over them)."""
    import urllib.request

    if isinstance(rig, ClusterRig):
        texts = []
        for member in rig.members:
            if member.name in rig.procs:
                text = rig.member_get(member, "/metrics", timeout=600)
                if not isinstance(text, str):
                    raise RigError(f"{member.name} did not answer /metrics")
                texts.append(text)
    else:
        request = urllib.request.Request(f"{rig.api}/metrics", headers=rig.auth_headers)
        # Slow on a big fleet: the scrape reads every classroom's last heartbeat.
        with urllib.request.urlopen(request, timeout=600, context=rig.ssl_context()) as resp:
            texts = [resp.read().decode()]
    out: dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not s.labels:
                    out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def measure_failover(rig: ClusterRig, lead_in_s: float = FAILOVER_LEAD_IN_S) -> float:
    """Kill the leader; seconds from when a lesson was due (or the kill, if later) until
    another controller made it live."""
    for room in ("failover-lead", "failover-far"):
        rig.add_classroom(room)
    leader = rig.leader()
    lesson = rig.schedule("failover-lead", ["failover-far"], lead_in_s, 60)
    due = datetime.fromisoformat(lesson["start_at"]).timestamp()
    if time.time() > due - FAILOVER_KILL_AHEAD_S:
        raise RigError(
            f"scheduling the failover lesson took past its start ({lead_in_s:g} s "
            "lead-in): the machine is too busy to time a failover"
        )
    # Killed just before the lesson falls due: the time measured is the takeover's.
    time.sleep(max(0.0, due - FAILOVER_KILL_AHEAD_S - time.time()))
    killed_at = time.time()
    rig.kill_member(leader)
    rig.wait_lesson(lesson["id"], ("live",), 60)
    events = rig.get(f"/lessons/{lesson['id']}")["events"]
    live_at = max(datetime.fromisoformat(e["at"]).timestamp() for e in events if e["to"] == "live")
    return round(live_at - max(due, killed_at), 2)


async def drive_commands(
    rig: LessonRig, ids: list[str], rate: float, seconds: float, proc: psutil.Process
) -> tuple[list[float], dict[str, int], list[float]]:
    """Send actions to random agents at ``rate`` a second for ``seconds``, each on its own
    (a slow answer does not hold the next back); returns the round trips (ms), failures by
    cause, and the controller's CPU over each 5 s."""
    rtts: list[float] = []
    failures: dict[str, int] = {}
    peaks: list[float] = []
    timeout = aiohttp.ClientTimeout(total=ACTION_TIMEOUT_S)
    connector = aiohttp.TCPConnector(ssl=rig.ssl_context(), limit=64)

    async def one(session: aiohttp.ClientSession) -> None:
        cid = random.choice(ids)
        start = time.perf_counter()
        try:
            async with session.post(
                f"{rig.api}/classrooms/{cid}/actions", json=ACTION, headers=rig.auth_headers
            ) as resp:
                doc = await resp.json()
                if resp.status == 200 and doc.get("ok"):
                    rtts.append((time.perf_counter() - start) * 1000)
                    return
                cause = f"http-{resp.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            cause = type(err).__name__
        failures[cause] = failures.get(cause, 0) + 1

    async def cpu_sampler() -> None:
        last = sum(proc.cpu_times()[:2])
        while True:
            await asyncio.sleep(5.0)
            now = sum(proc.cpu_times()[:2])
            peaks.append((now - last) / 5.0 * 100)
            last = now

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler = asyncio.create_task(cpu_sampler())
        tasks = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = int(seconds * rate)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.sleep(max(0.0, start + seconds - loop.time()))
        sampler.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
    return rtts, failures, peaks


def runnable_wait_s(pid: int) -> float:
    """Seconds the process's threads have waited for a CPU while runnable (schedstat): on
    a machine busy with other work, the part of a figure that is not the controller's."""
    total = 0
    for stat in pathlib.Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a worker thread that ended
    return total / 1e9


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 1)


def wait_registered(rig: LessonRig, fleet: Fleet, n: int, timeout: float) -> float:
    """Wait until every simulated agent is registered; returns how long it took."""
    start = time.monotonic()
    while fleet.total("registered") < n:
        fleet.check_alive()
        if time.monotonic() - start > timeout:
            raise RigError(
                f"only {fleet.total('registered'):.0f} of {n} agents registered after "
                f"{timeout:.0f} s; logs in {rig.logs}"
            )
        time.sleep(0.5)
    return time.monotonic() - start


def start_py_spy(pid: int, out: pathlib.Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` on the controller for the window (raw collapsed stacks)."""
    exe = shutil.which("py-spy", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
        "py-spy"
    )
    if exe is None:
        print("bench-control-plane: py-spy not found; no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            "50",
            "--threads",
            "--format",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_summary(path: pathlib.Path, top: int = 12) -> dict[str, Any]:
    """What ``py-spy record --format raw`` saw: the share of samples on the event loop
    (the main thread) and on worker threads, the functions of ours that held the most
    samples (inclusive) and the frames that were on top most often (self)."""
    threads: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        where = (
            "event loop"
            if any(f.startswith("run_forever") or "(controller/cli" in f for f in frames)
            else "worker threads"
        )
        threads[where] = threads.get(where, 0) + n
        total += n
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for name in {
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
            for f in frames[1:]
            if "(controller/" in f and "(controller/cli" not in f
        }:
            inclusive[name] = inclusive.get(name, 0) + n

    def shares(counts: dict[str, int]) -> dict[str, float]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return {k: round(100 * v / max(total, 1), 1) for k, v in ranked}

    return {
        "samples": total,
        "threads_pct": shares(threads),
        "ours_inclusive_pct": shares(inclusive),
        "self_pct": shares(own),
    }


def run(settings: Settings, root: pathlib.Path | None = None) -> dict[str, Any]:
    """Enrol the fleet, start the controller and the simulators, measure; the figures."""
    n, hb = settings.agents, settings.heartbeat_s
    pg: Any = None
    database = settings.database
    rig: LessonRig
    if settings.controllers > 1:
        if database is None:
            from pg_server import start_server

            pg = start_server()
            database = pg.url(pg.create_database())
        rig = ClusterRig(
            database, count=settings.controllers, root=root, heartbeat_s=hb, prepare_s=300.0
        )
    else:
        rig = LessonRig(root=root, heartbeat_s=hb, prepare_s=300.0)
    doc: dict[str, Any] = {
        "agents": n,
        "heartbeat_s": hb,
        "duration_s": settings.duration_s,
        "enrol": settings.enrol,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        t = time.monotonic()
        server_public, identities, rig.api_token = enrol_fleet(
            rig.controller_state,
            n,
            wire=settings.enrol == "wire",
            database=database if isinstance(rig, ClusterRig) else None,
        )
        doc["enrol_s"] = round(time.monotonic() - t, 1)
        rig.start_controller()
        if isinstance(rig, ClusterRig):
            procs = [psutil.Process(rig.procs[m.name].pid) for m in rig.members]
            endpoints = rig.endpoints()
        else:
            procs = [psutil.Process(rig.procs["controller"].pid)]
            endpoints = [f"tcp://127.0.0.1:{rig.port}"]
        proc = procs[0]
        fleet = Fleet(rig, settings)
        fleet.start(server_public, identities, endpoints)
        doc["sim_processes"] = len(fleet.status_files)
        doc["ramp_s"] = round(wait_registered(rig, fleet, n, n / settings.ramp_per_s + 180), 1)
        time.sleep(settings.settle_s if settings.settle_s is not None else 2 * hb)

        s0 = time.monotonic()
        before = scrape(rig)
        m0 = time.monotonic()
        doc["metrics_scrape_s"] = round(m0 - s0, 1)
        sim0 = [s.get("cpu_s", 0.0) for s in fleet.statuses()]
        beats0, acks0 = fleet.total("heartbeats"), fleet.total("heartbeat_acks")
        cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
        wait0 = sum(runnable_wait_s(p.pid) for p in procs)
        psutil.cpu_percent()  # the machine's, from now
        t0 = time.monotonic()
        spy = (
            start_py_spy(proc.pid, settings.py_spy, settings.duration_s)
            if settings.py_spy
            else None
        )
        ids = [i.classroom_id for i in identities]
        rtts, failures, peaks = asyncio.run(
            drive_commands(rig, ids, settings.commands_per_s, settings.duration_s, proc)
        )
        cpu1 = [sum(p.cpu_times()[:2]) for p in procs]
        wait1 = sum(runnable_wait_s(p.pid) for p in procs)
        t1 = time.monotonic()
        machine = psutil.cpu_percent()
        beats1, acks1 = fleet.total("heartbeats"), fleet.total("heartbeat_acks")
        statuses = fleet.statuses()
        sim1 = [s.get("cpu_s", 0.0) for s in statuses]
        after = scrape(rig)
        m1 = time.monotonic()
        if spy is not None and settings.py_spy is not None:
            spy.wait(timeout=60)
            doc["profile"] = profile_summary(settings.py_spy)
        fleet.check_alive()
        listed = {r["id"]: r["online"] for r in rig.get("/classrooms")}
        window = t1 - t0
        not_online = sum(1 for cid in ids if not listed.get(cid))
        declared = after.get("classbridge_agents_declared_offline_total", 0.0)
        sim_pct = [(b - a) / window * 100 for a, b in zip(sim0, sim1, strict=True)]
        cpu_each = [round((b - a) / window * 100, 1) for a, b in zip(cpu0, cpu1, strict=True)]
        doc.update(
            database="postgresql" if isinstance(rig, ClusterRig) else "sqlite",
            controllers=len(procs),
            controller_cpu_pct=max(cpu_each),
            controller_cpu_pct_each=cpu_each,
            controller_cpu_peak_pct=round(max(peaks), 1) if peaks else None,
            controller_cpu_wait_pct=round((wait1 - wait0) / window * 100, 1),
            command_rtt_p50_ms=percentile(rtts, 0.50),
            command_rtt_p99_ms=percentile(rtts, 0.99),
            commands=len(rtts) + sum(failures.values()),
            command_failures=sum(failures.values()),
            command_failure_causes=failures,
            offline_false=int(declared) + not_online,
            offline_declared=int(declared),
            offline_at_end=not_online,
            revived=int(after.get("classbridge_agents_revived_total", 0.0)),
            heartbeat_batches_per_s=round(
                (
                    after.get("classbridge_heartbeat_batches_total", 0.0)
                    - before.get("classbridge_heartbeat_batches_total", 0.0)
                )
                / (m1 - m0),
                2,
            ),
            heartbeat_rows_per_s=round(
                (
                    after.get("classbridge_heartbeat_rows_written_total", 0.0)
                    - before.get("classbridge_heartbeat_rows_written_total", 0.0)
                )
                / (m1 - m0),
                1,
            ),
            heartbeat_quiet_skipped_per_s=round(
                (
                    after.get("classbridge_heartbeat_quiet_skipped_total", 0.0)
                    - before.get("classbridge_heartbeat_quiet_skipped_total", 0.0)
                )
                / (m1 - m0),
                1,
            ),
            heartbeat_batch_s_mean=round(
                (
                    after.get("classbridge_heartbeat_batch_seconds_total", 0.0)
                    - before.get("classbridge_heartbeat_batch_seconds_total", 0.0)
                )
                / max(
                    after.get("classbridge_heartbeat_batches_total", 0.0)
                    - before.get("classbridge_heartbeat_batches_total", 0.0),
                    1.0,
                ),
                3,
            ),
            heartbeat_batch_s_max=round(
                after.get("classbridge_heartbeat_batch_seconds_max", 0.0), 3
            ),
            heartbeat_backlog=int(after.get("classbridge_heartbeat_backlog", 0)),
            heartbeat_write_errors=int(after.get("classbridge_heartbeat_write_errors_total", 0)),
            heartbeats_per_s=round((beats1 - beats0) / window, 1),
            heartbeat_acks_per_s=round((acks1 - acks0) / window, 1),
            not_registered=int(sum(s.get("not_registered", 0) for s in statuses)),
            register_timeouts=int(sum(s.get("register_timeouts", 0) for s in statuses)),
            late_replies=int(sum(s.get("late_replies", 0) for s in statuses)),
            enrolled_over_wire=int(sum(s.get("enrolled", 0) for s in statuses)),
            sim_cpu_pct=round(sum(sim_pct), 1),
            sim_cpu_pct_max_process=round(max(sim_pct), 1),
            sim_beat_late_max_s=round(max(s.get("beat_late_max_s", 0.0) for s in statuses), 2),
            sim_errors=int(sum(s.get("errors", 0) + s.get("send_dropped", 0) for s in statuses)),
            machine_cpu_pct=round(machine, 1),
            loadavg=[round(x, 2) for x in os.getloadavg()],
            failover_s=None,
            failover_note=FAILOVER_NOTE,
            logs=str(rig.logs),
        )
        if isinstance(rig, ClusterRig):
            doc["failover_s"] = measure_failover(rig, settings.failover_lead_in_s)
            doc["failover_note"] = (
                "leader killed (SIGKILL) 0.2 s before a lesson was due; from then until "
                "the other controller made it live"
            )
    finally:
        rig.stop()
        if pg is not None:
            pg.stop()
    return doc


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--agents", type=int, default=Settings.agents)
    parser.add_argument("--heartbeat-s", type=float, default=Settings.heartbeat_s)
    parser.add_argument("--duration-s", type=float, default=Settings.duration_s)
    parser.add_argument("--commands-per-s", type=float, default=Settings.commands_per_s)
    parser.add_argument("--ramp-per-s", type=float, default=Settings.ramp_per_s)
    parser.add_argument("--agents-per-process", type=int, default=Settings.agents_per_process)
    parser.add_argument("--py-spy", type=pathlib.Path, help="write the controller's raw stacks")
    parser.add_argument(
        "--enrol",
        choices=("bulk", "wire"),
        default="bulk",
        help="bulk: keys enrolled through the controller's registry before it starts; "
        "wire: each agent enrols on the enrolment socket",
    )
    parser.add_argument("--keep", type=pathlib.Path, help="state and logs here (kept)")
    parser.add_argument(
        "--controllers",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: two controllers on PostgreSQL, and the leader's failover timed",
    )
    parser.add_argument(
        "--database",
        help="PostgreSQL URL for --controllers 2 (default: a private server via pg_ctl)",
    )
    args = parser.parse_args()
    # SIGTERM ends the run through its clean-up (the controller and the simulators).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = Settings(
        agents=args.agents,
        heartbeat_s=args.heartbeat_s,
        duration_s=args.duration_s,
        commands_per_s=args.commands_per_s,
        ramp_per_s=args.ramp_per_s,
        agents_per_process=args.agents_per_process,
        py_spy=args.py_spy,
        enrol=args.enrol,
        controllers=args.controllers,
        database=args.database,
    )
    doc = run(settings, args.keep)
    for key, value in doc.items():
        print(f"{key:>26}: {value}")
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))


if __name__ == "__main__":
    main()
