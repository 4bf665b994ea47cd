"""The agent hub: a CURVE-encrypted ZeroMQ ROUTER that every agent dials into.

Two sockets: the control socket admits only enrolled keys (checked by a ZAP handler
against the ``KeyBook``), and the enrolment socket admits any key but understands only
``EnrolRequest``. A message that does not decode is logged, counted and answered with
``ErrorReply``; the receive loop never dies.

An identity is proved, never claimed. The ROUTER assigns every connection its routing id
(agents do not name themselves, and there is no ``ROUTER_HANDOVER``, so no connection can
take over another's route). A route is bound to the classroom whose CURVE key sent the
first message on it (the ZAP ``User-Id``), commands go only to that route, and a reply
settles a request only if it comes from the classroom that was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from controller.agents.keys import AnyKey, KeyBook, ServerKeys
from protocols import envelope
from protocols.envelope import MAX_ENROL_MESSAGE_BYTES, MAX_MESSAGE_BYTES, Envelope
from protocols.errors import NotForPeer, ProtocolError
from protocols.messages import Body, EnrolRequest, EnrolResult, ErrorReply
from protocols.version import PROTOCOL_MINOR

log = logging.getLogger(__name__)

SENDER = "controller"
MessageHandler = Callable[[str, Envelope], Awaitable[Body | None]]


# A handler that answers at once, on the receive loop, or returns LATER for the
# asynchronous handler: heartbeats, most of a province's traffic, need no task each.
class Later:
    """The immediate handler's "not mine": the message goes to the asynchronous one."""


LATER = Later()
ImmediateHandler = Callable[[str, Envelope], "Body | Later | None"]
# Messages taken off the socket in one go before any is handled: the queue drained
# without a future per message, yet the loop let go of often enough to stay fair.
DRAIN_MAX = 256
# After a batch that emptied the queue, a short pause lets the next messages gather: at a
# province's 2,000 heartbeats a second, a wake-up per message (a future, a reader
# registered and removed, a task step) cost more than the messages. Replies to the
# controller's own requests wait at most this long more.
GATHER_S = 0.01
EnrolHandler = Callable[[EnrolRequest], Awaitable[EnrolResult]]


@dataclass
class HubCounters:
    """What the hub has seen, for health pages and tests."""

    received: int = 0
    sent: int = 0
    decode_errors: int = 0
    handler_errors: int = 0
    spoofed: int = 0
    foreign_replies: int = 0
    unroutable: int = 0
    held_back: int = 0  # messages an agent's older release has no type for: not sent
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class AgentHub:
    """Binds the control and enrolment sockets and routes messages to handlers."""

    def __init__(
        self,
        control_bind: str,
        enrol_bind: str,
        keys: ServerKeys,
        key_book: KeyBook,
        on_message: MessageHandler,
        on_enrol: EnrolHandler,
        on_message_now: ImmediateHandler | None = None,
    ) -> None:
        self._on_message_now = on_message_now
        self._control_bind = control_bind
        self._enrol_bind = enrol_bind
        self._keys = keys
        self._key_book = key_book
        self._on_message = on_message
        self._on_enrol = on_enrol
        self._ctx: zmq.asyncio.Context | None = None
        self._auth: AsyncioAuthenticator | None = None
        self._control: zmq.asyncio.Socket | None = None
        # The same socket without futures, used only from the receive loop between two
        # awaits (so no receive of the asyncio socket is pending while it is used).
        self._control_now: zmq.Socket[bytes] | None = None
        self._enrol: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._routes: dict[str, bytes] = {}  # classroom → the route its key last spoke on
        self._minor: dict[str, int] = {}  # classroom → its agent's protocol minor, as it sent
        self._route_owner: dict[bytes, str] = {}  # and back
        self._pending: dict[str, tuple[str, asyncio.Future[Envelope]]] = {}
        self.counters = HubCounters()
        self.control_port = 0
        self.enrol_port = 0

    async def start(self) -> None:
        """Bind both sockets and start their receive loops."""
        self._ctx = zmq.asyncio.Context()
        self._auth = AsyncioAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve_callback("agents", credentials_provider=self._key_book)
        self._auth.configure_curve_callback("enrol", credentials_provider=AnyKey())
        self._control = self._server_socket("agents", self._control_bind, MAX_MESSAGE_BYTES)
        self._enrol = self._server_socket("enrol", self._enrol_bind, MAX_ENROL_MESSAGE_BYTES)
        self._control_now = zmq.Socket.shadow(self._control.underlying)
        self.control_port = _port_of(self._control)
        self.enrol_port = _port_of(self._enrol)
        self._tasks = [
            asyncio.create_task(self._control_loop(), name="hub-control"),
            asyncio.create_task(self._enrol_loop(), name="hub-enrol"),
        ]
        log.info("agent hub on %s (enrolment on %s)", self._control_bind, self._enrol_bind)

    def _server_socket(self, domain: str, bind: str, max_bytes: int) -> zmq.asyncio.Socket:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_secretkey = self._keys.secret
        sock.curve_publickey = self._keys.public
        sock.zap_domain = domain.encode()
        # No ROUTER_HANDOVER: a peer naming a route already in use must not displace it.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Bigger messages make ZeroMQ drop the sender before the bytes are held.
        sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        sock.linger = 0
        sock.bind(bind)
        return sock

    async def stop(self) -> None:
        """Stop the loops and close the sockets; safe to call on any failure path."""
        for task in [*self._tasks, *self._handlers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)
        self._tasks = []
        for _, fut in self._pending.values():
            fut.cancel()
        self._control_now = None  # a shadow: closing the socket it shadows closes it
        for sock in (self._control, self._enrol):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        self._ctx = None

    def is_routable(self, classroom_id: str) -> bool:
        """Whether the classroom has spoken to this controller instance."""
        return classroom_id in self._routes

    async def send(self, classroom_id: str, body: Body, correlation_id: str | None = None) -> str:
        """Send a message to a classroom's agent; returns the message id."""
        route = self._routes.get(classroom_id)
        if route is None or self._control is None:
            self.counters.unroutable += 1
            raise ConnectionError(f"agent {classroom_id!r} has not connected to this controller")
        env = envelope.make(body, SENDER, correlation_id)
        try:
            data = self._encode_for(classroom_id, env)
            await self._control.send_multipart([route, data], flags=zmq.NOBLOCK)
        except zmq.ZMQError as err:
            self.counters.unroutable += 1
            raise ConnectionError(f"agent {classroom_id!r} is unreachable: {err}") from err
        self.counters.sent += 1
        return env.id

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send and wait for the reply that carries our id as its correlation id."""
        loop = asyncio.get_running_loop()
        env = envelope.make(body, SENDER)
        future: asyncio.Future[Envelope] = loop.create_future()
        route = self._routes.get(classroom_id)
        if route is None or self._control is None:
            raise ConnectionError(f"agent {classroom_id!r} has not connected to this controller")
        data = self._encode_for(classroom_id, env)
        self._pending[env.id] = (classroom_id, future)
        try:
            await self._control.send_multipart([route, data], flags=zmq.NOBLOCK)
            self.counters.sent += 1
            return await asyncio.wait_for(future, timeout)
        except zmq.ZMQError as err:
            raise ConnectionError(f"agent {classroom_id!r} is unreachable: {err}") from err
        finally:
            self._pending.pop(env.id, None)

    async def _control_loop(self) -> None:
        assert self._control is not None and self._control_now is not None
        sock, now = self._control, self._control_now
        while True:
            batch = [await sock.recv_multipart(copy=False)]
            # Whatever else is queued is taken now without awaiting: at 2,000 messages a
            # second, a future and a wake-up per message were a fifth of the hub's time.
            while len(batch) < DRAIN_MAX:
                try:
                    batch.append(now.recv_multipart(flags=zmq.NOBLOCK, copy=False))
                except zmq.Again:
                    break
            for frames in batch:
                self._receive(frames)
            # Let the handlers and the other tasks run before the next batch; a batch that
            # emptied the queue is followed by a short pause for the next ones to gather.
            await asyncio.sleep(0 if len(batch) == DRAIN_MAX else GATHER_S)

    def _receive(self, frames: list[zmq.Frame]) -> None:
        """Admit one message and handle it: at once when the immediate handler answers
        it, else in a task of its own (answering an SDP offer waits for ICE gathering, and
        must not hold up every other agent's heartbeats). Never raises."""
        try:
            admitted = self._admit(frames)
            if admitted is None:
                return
            classroom_id, env = admitted
            if self._on_message_now is not None:
                reply = self._on_message_now(classroom_id, env)
                if not isinstance(reply, Later):
                    if reply is not None:
                        self._send_now(classroom_id, reply, env.id)
                    return
        except Exception:
            self.counters.handler_errors += 1
            log.exception("control message handler failed; carrying on")
            return
        task = asyncio.create_task(self._guarded(classroom_id, env))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _guarded(self, classroom_id: str, env: Envelope) -> None:
        try:
            reply = await self._on_message(classroom_id, env)
            if reply is not None:
                await self.send(classroom_id, reply, correlation_id=env.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.handler_errors += 1
            log.exception("control message handler failed; carrying on")

    def _admit(self, frames: list[zmq.Frame]) -> tuple[str, Envelope] | None:
        """The sending classroom and its message, or None: refused (answered, counted and
        logged here) or a reply that settled a request."""
        self.counters.received += 1
        if len(frames) != 2:
            self._count_error("framing")
            log.warning("control message with %d frames (want 2); dropped", len(frames))
            return None
        route, payload = frames
        key = str(payload.get("User-Id"))
        classroom_id = self._key_book.classroom_for(key)
        if classroom_id is None:  # key withdrawn after the handshake
            self._count_error("unknown-key")
            return None
        try:
            env = envelope.decode(payload.bytes)
        except ProtocolError as err:
            self._count_error(type(err).__name__)
            log.warning("bad message from %s: %s", classroom_id, err)
            minor = envelope.peek_minor(payload.bytes)
            self._reply_error(route.bytes, "malformed", str(err), None, minor)
            return None
        if not self._route_is_theirs(route.bytes, classroom_id):
            refusal = "the controller assigns routing ids; do not set one"
            self._reply_error(route.bytes, "routing-id", refusal, None)
            return None
        if env.sender != classroom_id:
            self.counters.spoofed += 1
            log.warning(
                "agent %s sent a message claiming to be %r; dropped", classroom_id, env.sender
            )
            self._reply_error(
                route.bytes, "sender-mismatch", f"sender must be {classroom_id!r}", env.id
            )
            return None
        self._bind(classroom_id, route.bytes)
        self._minor[classroom_id] = env.m
        pending = self._pending.get(env.correlation_id or "")
        if pending is not None:
            asked, future = pending
            if asked != classroom_id:
                self.counters.foreign_replies += 1
                log.warning("agent %s answered a request sent to %s; dropped", classroom_id, asked)
                return None
            if not future.done():
                future.set_result(env)
            return None
        return classroom_id, env

    def _send_now(self, classroom_id: str, body: Body, correlation_id: str) -> None:
        """Answer from the receive loop: a non-blocking send that never waits (a peer
        gone or its queue full loses only this reply, counted, as ``send`` would)."""
        assert self._control_now is not None
        route = self._routes[classroom_id]
        env = envelope.make(body, SENDER, correlation_id)
        try:
            data = self._encode_for(classroom_id, env)
            self._control_now.send_multipart([route, data], flags=zmq.NOBLOCK)
        except (zmq.ZMQError, ConnectionError) as err:
            self.counters.unroutable += 1
            log.debug("reply to %s not sent: %s", classroom_id, err)
            return
        self.counters.sent += 1

    def _route_is_theirs(self, route: bytes, classroom_id: str) -> bool:
        """Whether ``route`` may carry ``classroom_id``'s key; refusals are logged and counted.

        A route the ROUTER assigned is five bytes, the first zero. Any other route was named
        by the peer itself. A route already bound to another classroom means a peer claimed
        a route that was not its own: the victim's binding is dropped, so that nothing meant
        for it goes to the claimant.
        """
        owner = self._route_owner.get(route)
        if len(route) == 5 and route[0] == 0 and owner in (None, classroom_id):
            return True
        self.counters.spoofed += 1
        if owner is not None and owner != classroom_id:
            log.warning(
                "agent %s spoke on the route of %s; dropped, and %s unrouted until it speaks",
                classroom_id,
                owner,
                owner,
            )
            if self._routes.get(owner) == route:
                del self._routes[owner]
            del self._route_owner[route]
        else:
            log.warning("agent %s named its own routing id %r; dropped", classroom_id, route)
        return False

    def _bind(self, classroom_id: str, route: bytes) -> None:
        old = self._routes.get(classroom_id)
        if old == route:
            return
        if old is not None:
            self._route_owner.pop(old, None)
        self._routes[classroom_id] = route
        self._route_owner[route] = classroom_id

    def _encode_for(self, classroom_id: str, env: Envelope) -> bytes:
        """The envelope as the classroom's agent reads it: an agent of an older release
        (one minor back) gets its own shape; ``ConnectionError`` for a message its release
        does not have (a floor change to a release-0.5 agent, say)."""
        try:
            return envelope.encode(env, self._minor.get(classroom_id, PROTOCOL_MINOR))
        except NotForPeer as err:
            self.counters.held_back += 1
            raise ConnectionError(f"agent {classroom_id!r}: {err}") from err

    async def _enrol_loop(self) -> None:
        assert self._enrol is not None
        while True:
            frames = await self._enrol.recv_multipart()
            try:
                _route, payload = frames
                env = envelope.decode(payload)
                request = env.expect(EnrolRequest)
                result = await self._on_enrol(request)
            except asyncio.CancelledError:
                raise
            except (ProtocolError, ValueError) as err:
                self._count_error("enrol-" + type(err).__name__)
                result = EnrolResult(accepted=False, reason=f"bad enrolment request: {err}")
                env = None
            except Exception:
                self.counters.handler_errors += 1
                log.exception("enrolment handler failed; carrying on")
                continue
            reply = envelope.make(result, SENDER, env.id if env else None)
            minor = env.m if env else envelope.peek_minor(frames[-1])
            try:
                await self._enrol.send_multipart(
                    [frames[0], envelope.encode(reply, minor)], flags=zmq.NOBLOCK
                )
            except zmq.ZMQError:
                log.warning("enrolling agent went away before its answer")

    def _reply_error(
        self,
        route: bytes,
        code: str,
        message: str,
        correlation_id: str | None,
        minor: int = PROTOCOL_MINOR,
    ) -> None:
        assert self._control_now is not None
        env = envelope.make(ErrorReply(code=code, message=message), SENDER, correlation_id)
        with contextlib.suppress(zmq.ZMQError):
            self._control_now.send_multipart(
                [route, envelope.encode(env, minor)], flags=zmq.NOBLOCK
            )

    def _count_error(self, kind: str) -> None:
        self.counters.decode_errors += 1
        self.counters.errors_by_kind[kind] = self.counters.errors_by_kind.get(kind, 0) + 1


def _port_of(sock: zmq.asyncio.Socket) -> int:
    endpoint = bytes(sock.getsockopt(zmq.LAST_ENDPOINT)).decode()
    return int(endpoint.rsplit(":", 1)[1])
