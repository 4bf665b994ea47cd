"""The agent's control link: a CURVE DEALER that dials the controller and keeps it alive.

ZeroMQ reconnects the socket by itself. On top of that the link re-registers whenever the
controller comes back (it answers a heartbeat with ``not-registered``, or acks resume after
a silence), and declares the controller lost after three unanswered heartbeats.

With several controllers (the list enrolment gave), a lost controller, or one that does not
answer ``REGISTER_TRIES`` registrations in a row, makes the link dial the next one in the
list, going round it in order: any controller serves any agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from edge_agent.clock import ClockEstimator
from edge_agent.identity import Identity
from protocols import envelope
from protocols.envelope import MAX_MESSAGE_BYTES, Envelope
from protocols.errors import NotForPeer, ProtocolError
from protocols.messages import (
    AgentAction,
    Body,
    CommandAck,
    ErrorReply,
    FloorState,
    Heartbeat,
    HeartbeatAck,
    JoinLesson,
    LeaveLesson,
    Register,
    RegisterAck,
    ScheduleUpdate,
    SdpAnswer,
    StartRecording,
    StopRecording,
    UploadTokenUpdate,
)
from protocols.version import PROTOCOL_MINOR

# FloorState is a command too: the controller sends it as a request and awaits the ack.
COMMANDS = (
    JoinLesson,
    LeaveLesson,
    StartRecording,
    StopRecording,
    ScheduleUpdate,
    AgentAction,
    FloorState,
    UploadTokenUpdate,
)

log = logging.getLogger(__name__)

REGISTER_TRIES = 3  # unanswered registrations before the link dials the next controller

CommandHandler = Callable[[Envelope], Awaitable[Body | None]]


@dataclass
class LinkCounters:
    """What the link has seen."""

    sent: int = 0
    received: int = 0
    decode_errors: int = 0
    handler_errors: int = 0
    dropped_while_offline: int = 0
    registrations: int = 0
    auth_failures: int = 0


class ControlLink:
    """Dials the controller, registers, heartbeats, and dispatches commands."""

    def __init__(
        self,
        identity: Identity,
        register: Callable[[], Register],
        heartbeat: Callable[[int], Heartbeat],
        on_command: CommandHandler,
        heartbeat_interval: float = 2.0,
    ) -> None:
        self._identity = identity
        self._make_register = register
        self._make_heartbeat = heartbeat
        self._on_command = on_command
        self.heartbeat_interval = heartbeat_interval
        self._ctx: zmq.asyncio.Context | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self.auth_refused = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        # Commands run one at a time, in order, off the receive loop: a command handler
        # may itself wait for a reply (an SDP answer) that the receive loop must deliver.
        self._commands: asyncio.Queue[Envelope] = asyncio.Queue()
        self._last_ack = 0.0
        self._seq = 0
        self.registered = asyncio.Event()
        self.peer_minor = PROTOCOL_MINOR  # until the controller's first message says
        self.register_ack: RegisterAck | None = None
        self.clock = ClockEstimator()
        self.counters = LinkCounters()
        # Called after every registration, the first and each one after the controller
        # was away: what waited for the controller (uploads) can go at once.
        self.on_registered: Callable[[], None] | None = None
        self._endpoints = identity.endpoints
        self._at = 0  # which of them the socket dials
        self._register_failures = 0
        self.failovers = 0

    @property
    def endpoint(self) -> str:
        """The controller this link dials now."""
        return self._endpoints[self._at]

    @property
    def sender(self) -> str:
        """This agent's name on the wire."""
        return self._identity.classroom_id

    @property
    def clock_offset_s(self) -> float | None:
        """Controller clock minus this agent's clock, in seconds (None until measured)."""
        return self.clock.offset_s

    @property
    def online(self) -> bool:
        """Whether the controller answered within the last three heartbeat intervals."""
        return time.monotonic() - self._last_ack < 3 * self.heartbeat_interval

    async def start(self) -> None:
        """Connect and start the receive, register and heartbeat loops."""
        self._ctx = zmq.asyncio.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.curve_serverkey = self._identity.controller_public_key.encode()
        sock.curve_publickey = self._identity.public_key.encode()
        sock.curve_secretkey = self._identity.secret_key.encode()
        # No sock.identity: the controller's ROUTER assigns the route and binds it to this
        # agent's CURVE key. A self-chosen id is refused there.
        sock.linger = 0
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue for a dead controller
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.SNDHWM, 200)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        sock.connect(self.endpoint)
        self._sock = sock
        self._monitor = monitor
        self._tasks = [
            asyncio.create_task(self._recv_loop(), name="link-recv"),
            asyncio.create_task(self._heartbeat_loop(), name="link-heartbeat"),
            asyncio.create_task(self._command_loop(), name="link-commands"),
            asyncio.create_task(self._monitor_loop(), name="link-monitor"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the socket."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        if self._sock is not None:
            self._sock.disable_monitor()
            self._sock.close(linger=0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def send(self, body: Body, correlation_id: str | None = None) -> bool:
        """Send a message; False (and counted) if the controller is not connected."""
        if self._sock is None:
            return False
        env = envelope.make(body, self.sender, correlation_id)
        try:
            await self._sock.send(envelope.encode(env, self.peer_minor), flags=zmq.NOBLOCK)
        except NotForPeer as err:
            log.info("not sent: %s", err)
            return False
        except zmq.Again:
            self.counters.dropped_while_offline += 1
            return False
        self.counters.sent += 1
        return True

    async def request(self, body: Body, timeout: float) -> Envelope:
        """Send and await the reply correlated with it."""
        if self._sock is None:
            raise ConnectionError("control link is not started")
        env = envelope.make(body, self.sender)
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[env.id] = future
        try:
            try:
                await self._sock.send(envelope.encode(env, self.peer_minor), flags=zmq.NOBLOCK)
            except NotForPeer as err:
                raise ConnectionError(str(err)) from err
            except zmq.Again as err:
                raise ConnectionError("controller is not connected") from err
            self.counters.sent += 1
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(env.id, None)
        if isinstance(reply.body, ErrorReply):
            raise ConnectionError(f"controller refused {body.TYPE}: {reply.body.message}")
        return reply

    async def _register(self) -> None:
        try:
            reply = await self.request(self._make_register(), timeout=self.heartbeat_interval)
        except (ConnectionError, TimeoutError) as err:
            log.info("registration with %s not answered yet (%s); will retry", self.endpoint, err)
            self._register_failures += 1
            if self._register_failures >= REGISTER_TRIES:
                self._next_controller("it did not answer registration")
            return
        self._register_failures = 0
        ack = reply.expect(RegisterAck)
        self.register_ack = ack
        self.heartbeat_interval = ack.heartbeat_interval_s
        self._last_ack = time.monotonic()
        self.counters.registrations += 1
        self.registered.set()
        log.info("registered with controller %s", self.endpoint)
        if self.on_registered is not None:
            try:
                self.on_registered()
            except Exception:
                log.exception("after registering: the on_registered hook failed; carrying on")

    async def _heartbeat_loop(self) -> None:
        was_online = False
        while True:
            if not self.registered.is_set():
                await self._register()
            else:
                self._seq += 1
                beat = self._make_heartbeat(self._seq)
                offset, rtt = self.clock.offset_s, self.clock.rtt_s
                if offset is not None and rtt is not None:
                    beat = beat.model_copy(
                        update={
                            "clock_offset_ms": round(offset * 1000, 1),
                            "rtt_ms": round(rtt * 1000, 2),
                        }
                    )
                self.clock.sent(self._seq, time.time())
                await self.send(beat)
            await asyncio.sleep(self.heartbeat_interval)
            if was_online and not self.online:
                log.warning(
                    "controller silent for %.1f s; working offline and retrying",
                    3 * self.heartbeat_interval,
                )
                self.registered.clear()
                self._next_controller("it went silent")
            was_online = self.online

    def _next_controller(self, why: str) -> None:
        """Dial the next controller in the list (none to move to with one)."""
        self._register_failures = 0
        if len(self._endpoints) < 2 or self._sock is None:
            return
        old = self.endpoint
        self._at = (self._at + 1) % len(self._endpoints)
        with contextlib.suppress(zmq.ZMQError):  # never connected there
            self._sock.disconnect(old)
        self._sock.connect(self.endpoint)
        self.failovers += 1
        log.warning("controller %s lost (%s); dialling %s", old, why, self.endpoint)

    async def _recv_loop(self) -> None:
        assert self._sock is not None
        while True:
            data = await self._sock.recv()
            self.counters.received += 1
            try:
                env = envelope.decode(data)
            except ProtocolError as err:
                self.counters.decode_errors += 1
                log.warning("bad message from controller, dropped: %s", err)
                continue
            try:
                await self._dispatch(env)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters.handler_errors += 1
                log.exception("handling %s failed; carrying on", env.type)

    async def _dispatch(self, env: Envelope) -> None:
        if env.m != self.peer_minor:
            # What the controller sends says its minor. A release-0.5 controller refuses
            # this build's first registration (its envelope has "m") with an error that
            # has none: the registration is retried in 0.5's shape (protocols.compat).
            log.info("controller speaks protocol minor %d (this agent %d)", env.m, PROTOCOL_MINOR)
            self.peer_minor = env.m
        pending = self._pending.get(env.correlation_id or "")
        if pending is not None and not pending.done():
            pending.set_result(env)
            return
        body = env.body
        if isinstance(body, HeartbeatAck):
            self._last_ack = time.monotonic()
            received = time.time()
            self.clock.answered(
                body.seq, body.received_at or body.server_time, body.server_time, received
            )
            return
        if isinstance(body, ErrorReply):
            if body.code == "not-registered":
                self.registered.clear()
            else:
                log.warning("controller reported %s: %s", body.code, body.message)
            return
        self._last_ack = time.monotonic()
        if isinstance(body, COMMANDS):
            self._commands.put_nowait(env)
        elif isinstance(body, (RegisterAck, SdpAnswer, CommandAck)):
            log.debug("reply %s arrived after its request timed out; dropped", env.type)
        else:
            log.warning("controller sent %s, which an agent does not handle", env.type)

    async def _monitor_loop(self) -> None:
        """Turn a refused CURVE handshake into one clear, actionable log line."""
        assert self._monitor is not None
        while True:
            event = parse_monitor_message(await self._monitor.recv_multipart())
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                if not self.auth_refused and len(self._endpoints) > 1:
                    # Several controllers: one learns a key enrolled at another within
                    # seconds, and the link moves on meanwhile.
                    log.warning(
                        "controller %s refused this agent's key (not yet known there, or "
                        "classroom %s's enrolment was replaced); trying the others. If "
                        "every controller refuses it, run 'classroom-agent enroll' again "
                        "with a token from 'classroom-controller classroom add %s'",
                        self.endpoint,
                        self._identity.classroom_id,
                        self._identity.classroom_id,
                    )
                elif not self.auth_refused:
                    log.error(
                        "controller %s refused this agent's key (classroom %s is not enrolled "
                        "there, or its enrolment was replaced); get a new token with "
                        "'classroom-controller classroom add %s' and run 'classroom-agent "
                        "enroll' again",
                        self.endpoint,
                        self._identity.classroom_id,
                        self._identity.classroom_id,
                    )
                self.auth_refused = True
                self.counters.auth_failures += 1
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.auth_refused = False

    async def _command_loop(self) -> None:
        while True:
            env = await self._commands.get()
            try:
                reply = await self._on_command(env)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.counters.handler_errors += 1
                log.exception("command %s failed", env.type)
                reply = CommandAck(command=env.type, ok=False, error=f"{type(err).__name__}: {err}")
            if reply is not None:
                await self.send(reply, correlation_id=env.id)
