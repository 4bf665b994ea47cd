"""A light fleet of simulated classroom agents on the real control protocol.

Each simulated agent is one CURVE DEALER with its own enrolled key pair (the controller's
ZAP handler admits it by that key; the ROUTER binds its route to the classroom the key
belongs to). It registers with a real ``Register`` (the synthetic profile's inventory and
digest), then sends a real ``Heartbeat`` every interval the ``RegisterAck`` names, with
the fields the agent daemon fills (CPU, memory, disk, temperature, network counters,
device states, clock offset and round trip), and answers commands as the agent's link
does: an ``AgentAction`` with an ``ActionResult``, a ``ScheduleUpdate`` with nothing,
any other command with a ``CommandAck``.

Many agents share one process (asyncio and zmq.asyncio, one socket each). To stay light
the fleet parses a ``HeartbeatAck`` as plain JSON; every other message goes through
``protocols.envelope.decode``. Run as a process::

    python scripts/benchlib/agent_fleet.py SPEC.json STATUS.json

SPEC names the control endpoint, the controller's public key, the ramp and the agents'
keys; STATUS is rewritten every second with the fleet's counters (``FleetStats``) and a
last time on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import random
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import zmq
import zmq.asyncio

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.clock import ClockEstimator  # noqa: E402
from edge_agent.health_report import device_states, inventory  # noqa: E402
from edge_agent.identity import enrol_endpoint  # noqa: E402
from edge_agent.link import COMMANDS  # noqa: E402
from edge_agent.profile import LoadedProfile, load_profile  # noqa: E402
from protocols import envelope  # noqa: E402
from protocols.envelope import MAX_ENROL_MESSAGE_BYTES, MAX_MESSAGE_BYTES, Envelope  # noqa: E402
from protocols.errors import ProtocolError  # noqa: E402
from protocols.messages import (  # noqa: E402
    ActionResult,
    AgentAction,
    Body,
    CommandAck,
    DeviceState,
    EnrolRequest,
    EnrolResult,
    Heartbeat,
    Register,
    RegisterAck,
    ScheduleUpdate,
)

SYNTHETIC = REPO / "hardware_profiles" / "synthetic.toml"
REGISTER_TIMEOUT_S = 60.0  # a registration storm queues on the controller's database
ENROL_TIMEOUT_S = 60.0  # enrolments are answered one at a time
HEARTBEAT_ACK = "agent.heartbeat.ack"
STATUS_EVERY_S = 1.0
NOT_MEASURED = "clock offset to the controller not measured yet"  # the daemon's readiness


@dataclass(frozen=True)
class SimIdentity:
    """One simulated classroom: its id and the CURVE key pair enrolled for it."""

    classroom_id: str
    public_key: str
    secret_key: str
    # A one-time enrolment token: the agent enrols its key over the wire first, as
    # 'classroom-agent enroll' does. Empty: the key was enrolled before the run.
    token: str = ""


@dataclass(frozen=True)
class FleetSpec:
    """What a fleet process runs: whom it dials, how fast it ramps up, and its agents."""

    controller: str  # tcp://host:port of the control socket
    controller_public_key: str
    agents: list[SimIdentity]
    first_index: int = 0  # this process's first agent in the whole fleet (for the ramp)
    ramp_per_s: float = 200.0  # registrations a second, over the whole fleet

    def save(self, path: pathlib.Path) -> None:
        """Write as JSON (the keys are the bench's throwaway ones)."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: pathlib.Path) -> FleetSpec:
        """Read what ``save`` wrote."""
        doc = json.loads(path.read_text())
        doc["agents"] = [SimIdentity(**a) for a in doc["agents"]]
        return cls(**doc)


@dataclass
class FleetStats:
    """What a fleet process did, summed over its agents."""

    agents: int = 0
    registered: int = 0  # agents registered now
    registrations: int = 0
    register_timeouts: int = 0  # sent, and not answered within REGISTER_TIMEOUT_S
    register_unsent: int = 0  # the socket was not connected yet
    enrolled: int = 0  # keys enrolled over the wire by this process's agents
    enrol_refused: int = 0
    heartbeats: int = 0
    heartbeat_acks: int = 0
    not_registered: int = 0  # heartbeats the controller answered "register first"
    commands: int = 0
    actions: int = 0
    errors: int = 0  # ErrorReply other than not-registered, undecodable messages
    late_replies: int = 0  # answers to requests that had timed out
    send_dropped: int = 0
    beat_late_max_s: float = 0.0  # worst lateness of a heartbeat against its schedule
    cpu_s: float = 0.0  # this process's CPU time, user + system
    wall_s: float = 0.0

    def document(self) -> dict[str, Any]:
        """As JSON."""
        return asdict(self)


class HealthModel:
    """Builds heartbeats as the agent daemon does, from the synthetic profile."""

    def __init__(self, profile: LoadedProfile) -> None:
        self.profile = profile
        self.inventory = inventory(profile.profile)
        self.devices: dict[str, DeviceState] = device_states(profile.profile, {}, {})

    def register(self, classroom_id: str) -> Register:
        """The registration the daemon sends after (re)connecting."""
        return Register(
            classroom_id=classroom_id,
            agent_version="bench-sim",
            profile_name=self.profile.profile.name,
            profile_digest=self.profile.digest,
            inventory=self.inventory,
        )

    def heartbeat(self, seq: int, clock: ClockEstimator, sent: int, recv: int) -> Heartbeat:
        """A heartbeat with plausible health figures of an idle classroom PC."""
        offset, rtt = clock.offset_s, clock.rtt_s
        measured = offset is not None and rtt is not None
        return Heartbeat(
            seq=seq,
            cpu_pct=round(random.uniform(3.0, 25.0), 1),
            mem_pct=round(random.uniform(30.0, 45.0), 1),
            disk_free_bytes=400 * 10**9 - seq * 4096,
            disk_pct=round(random.uniform(18.0, 19.0), 2),
            temperature_c=round(random.uniform(42.0, 55.0), 1),
            devices=self.devices,
            lesson_id=None,
            clock_offset_ms=round(offset * 1000, 1) if offset is not None else None,
            rtt_ms=round(rtt * 1000, 2) if rtt is not None else None,
            readiness={} if measured else {"clock": NOT_MEASURED},
            net_bytes_sent=sent,
            net_bytes_recv=recv,
        )


class SimAgent:
    """One simulated agent: a DEALER, its registration, heartbeats and answers."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        spec: FleetSpec,
        identity: SimIdentity,
        health: HealthModel,
        stats: FleetStats,
        start_delay_s: float,
    ) -> None:
        self._ctx = ctx
        self._spec = spec
        self.identity = identity
        self._health = health
        self._stats = stats
        self._start_delay_s = start_delay_s
        self._sock: zmq.asyncio.Socket | None = None
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._registered = False
        self._interval = 5.0
        self._seq = 0
        self._clock = ClockEstimator()
        self._net_sent = random.randint(10**8, 10**10)
        self._net_recv = random.randint(10**8, 10**10)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Open the socket and start the receive and heartbeat loops (the dial is lazy)."""
        sock = self._ctx.socket(zmq.DEALER)
        sock.curve_serverkey = self._spec.controller_public_key.encode()
        sock.curve_publickey = self.identity.public_key.encode()
        sock.curve_secretkey = self.identity.secret_key.encode()
        sock.linger = 0
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.SNDHWM, 200)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._sock = sock
        self._tasks = [
            asyncio.create_task(self._recv_loop()),
            asyncio.create_task(self._beat_loop()),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the socket."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._registered:
            self._stats.registered -= 1

    async def _send(self, body: Body, correlation_id: str | None = None) -> Envelope | None:
        assert self._sock is not None
        env = envelope.make(body, self.identity.classroom_id, correlation_id)
        data = envelope.encode(env)
        try:
            await self._sock.send(data, flags=zmq.NOBLOCK)
        except zmq.Again:
            self._stats.send_dropped += 1
            return None
        self._net_sent += len(data)
        return env

    async def _register(self) -> None:
        """Register until answered, as the agent's link does after (re)connecting."""
        loop = asyncio.get_running_loop()
        while True:
            future: asyncio.Future[Envelope] = loop.create_future()
            body = self._health.register(self.identity.classroom_id)
            env = envelope.make(body, self.identity.classroom_id)
            self._pending[env.id] = future
            assert self._sock is not None
            try:
                await self._sock.send(envelope.encode(env), flags=zmq.NOBLOCK)
                reply = await asyncio.wait_for(future, REGISTER_TIMEOUT_S)
            except zmq.Again:  # not connected yet (IMMEDIATE): try again, as the link does
                self._stats.register_unsent += 1
                await asyncio.sleep(0.5)
                continue
            except TimeoutError:
                self._stats.register_timeouts += 1
                continue
            finally:
                self._pending.pop(env.id, None)
            if isinstance(reply.body, RegisterAck):
                self._interval = reply.body.heartbeat_interval_s
                self._registered = True
                self._stats.registered += 1
                self._stats.registrations += 1
                return
            self._stats.errors += 1
            await asyncio.sleep(1.0)

    async def _enrol(self) -> bool:
        """Present the token and the public key on the enrolment socket, as
        ``edge_agent.enrol`` does; whether the controller accepted the key."""
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_ENROL_MESSAGE_BYTES)
        sock.curve_serverkey = self._spec.controller_public_key.encode()
        sock.curve_publickey = self.identity.public_key.encode()
        sock.curve_secretkey = self.identity.secret_key.encode()
        try:
            sock.connect(enrol_endpoint(self._spec.controller))
            request = EnrolRequest(
                token=self.identity.token,
                public_key=self.identity.public_key,
                hostname=f"bench-sim-{os.getpid()}",
                agent_version="bench-sim",
            )
            cid = self.identity.classroom_id
            await sock.send(envelope.encode(envelope.make(request, "enrolling:" + cid)))
            if not await sock.poll(ENROL_TIMEOUT_S * 1000):
                raise TimeoutError("no answer to the enrolment")
            result = envelope.decode(await sock.recv()).expect(EnrolResult)
        except (ProtocolError, TimeoutError):
            result = EnrolResult(accepted=False)
        finally:
            sock.close(linger=0)
        if result.accepted and result.classroom_id == self.identity.classroom_id:
            self._stats.enrolled += 1
            return True
        self._stats.enrol_refused += 1
        return False

    async def _beat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._start_delay_s)
        if self.identity.token and not await self._enrol():
            return  # not enrolled: never registered, which the bench reports
        assert self._sock is not None
        self._sock.connect(self._spec.controller)
        while True:
            if not self._registered:
                await self._register()
                next_at = loop.time() + self._interval
            else:
                late = loop.time() - next_at
                if late > self._stats.beat_late_max_s:
                    self._stats.beat_late_max_s = late
                self._seq += 1
                beat = self._health.heartbeat(
                    self._seq, self._clock, self._net_sent, self._net_recv
                )
                self._clock.sent(self._seq, time.time())
                if await self._send(beat) is not None:
                    self._stats.heartbeats += 1
                next_at += self._interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _recv_loop(self) -> None:
        assert self._sock is not None
        while True:
            data = await self._sock.recv()
            self._net_recv += len(data)
            try:
                await self._dispatch(data)
            except asyncio.CancelledError:
                raise
            except (ProtocolError, ValueError, KeyError, TypeError):
                self._stats.errors += 1

    async def _dispatch(self, data: bytes) -> None:
        doc = json.loads(data)
        kind = doc["type"]
        if kind == HEARTBEAT_ACK:  # the hot path: plain JSON, no model
            body = doc["body"]
            self._stats.heartbeat_acks += 1
            received = body.get("received_at") or body["server_time"]
            self._clock.answered(body["seq"], received, body["server_time"], time.time())
            return
        env = envelope.decode(data)
        pending = self._pending.get(env.correlation_id or "")
        if pending is not None:
            if not pending.done():
                pending.set_result(env)
            return
        body = env.body
        if kind == "error":
            if getattr(body, "code", "") == "not-registered":
                self._stats.not_registered += 1
                if self._registered:
                    self._registered = False
                    self._stats.registered -= 1
            else:
                self._stats.errors += 1
            return
        if isinstance(body, COMMANDS):
            await self._command(env)
        else:  # a reply after its request timed out (a RegisterAck): dropped, as the link does
            self._stats.late_replies += 1

    async def _command(self, env: Envelope) -> None:
        """Answer a command as the agent's link and daemon do."""
        body = env.body
        self._stats.commands += 1
        if isinstance(body, ScheduleUpdate):
            return  # stored by the daemon; not acknowledged
        if isinstance(body, AgentAction):
            self._stats.actions += 1
            lines = [f"bench-sim {self.identity.classroom_id}: line {i}" for i in range(3)]
            reply: Body = ActionResult(
                action=body.action, ok=True, output="\n".join(lines[: body.lines])
            )
        else:
            reply = CommandAck(command=env.type, ok=True)
        await self._send(reply, correlation_id=env.id)


async def run_fleet(spec: FleetSpec, status: pathlib.Path) -> None:
    """Run the fleet until SIGTERM, writing its counters to ``status`` every second."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ctx = zmq.asyncio.Context()
    ctx.max_sockets = len(spec.agents) + 64
    stats = FleetStats(agents=len(spec.agents))
    health = HealthModel(load_profile(SYNTHETIC))
    agents = [
        SimAgent(ctx, spec, ident, health, stats, (spec.first_index + i) / spec.ramp_per_s)
        for i, ident in enumerate(spec.agents)
    ]
    for agent in agents:
        agent.start()
    started = time.monotonic()
    try:
        while not stop.is_set():
            _write_status(status, stats, started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
    finally:
        _write_status(status, stats, started)
        await asyncio.gather(*(a.stop() for a in agents))
        ctx.term()


def _write_status(path: pathlib.Path, stats: FleetStats, started: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats.cpu_s = round(usage.ru_utime + usage.ru_stime, 2)
    stats.wall_s = round(time.monotonic() - started, 2)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats.document()))
    os.replace(tmp, path)


def main() -> None:
    """``agent_fleet.py SPEC.json STATUS.json``."""
    spec_path, status_path = (pathlib.Path(a) for a in sys.argv[1:3])
    asyncio.run(run_fleet(FleetSpec.load(spec_path), status_path))


if __name__ == "__main__":
    main()
