"""Commands for an agent that is connected to another controller, routed through
PostgreSQL's LISTEN/NOTIFY.

Why LISTEN/NOTIFY and not a routing table: the database every controller already shares
carries the message itself, at once, with no polling and no schema change; and a
controller that dies takes its subscriptions with it (its session ends), so nothing is
left to clean up. A table would need a migration, a poll or a trigger, and rows to expire
after a crash.

Nothing is broadcast. Each controller LISTENs on one channel per agent registered with it
(``cba_`` and a hash of the classroom id) and on its own reply channel (``cbn_`` and a hash
of its node name); the leader also LISTENs on ``cb_leader``, where the others tell it about
registrations, lesson changes and floor changes. A command goes to the agent's channel,
so only the controller holding the agent hears it; it delivers the command over its hub
and NOTIFYs the answer to the asker's reply channel. A notification that nobody hears is
dropped by PostgreSQL: the asker then times out, naming the classroom. A one-way message
(a schedule) is not answered, as a hub's send is not.

A controller also asks the leader itself (``ask_leader``): the leader's orchestrator runs
each lesson's relay, so an agent held by another controller sends its media offer there,
and the answer (with the leader's ICE candidates) comes back to it. The request goes on
``cb_leader`` and its answer to the asker's reply channel, as a command's does.

PostgreSQL refuses a NOTIFY payload over 8000 bytes. A larger message (a join with many
rooms, say) is cut into parts sent in one transaction, which PostgreSQL delivers together
and in order, and put together again by message id; past ``MAX_ROUTED_CHARS`` it is
refused with ``RouteTooLarge``. Part sets left incomplete are dropped after
``PARTS_TTL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from controller.agents.hub import AgentHub
from controller.cluster.conninfo import connect_kwargs, libpq_conninfo
from protocols import envelope
from protocols.envelope import Envelope
from protocols.errors import ProtocolError
from protocols.messages import Body

log = logging.getLogger(__name__)

LEADER_CHANNEL = "cb_leader"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL's limit is 8000 bytes
PART_CHARS = 3500  # a part's text, escaped again inside its JSON, stays under the limit
MAX_ROUTED_CHARS = 1024 * 1024
PARTS_TTL_S = 30.0
LISTEN_POLL_S = 0.2  # the listener applies new LISTEN/UNLISTENs at least this often
RECONNECT_S = 1.0

LeaderEvent = Callable[[dict[str, Any]], None]
# The leader's answer to another controller's request: its kind and payload in, a JSON
# object out (raise ``LeaderRefused`` to answer with an error).
LeaderServe = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class LeaderRefused(ConnectionError):
    """The leader could not do what another controller asked (the message says why;
    ``code`` is a short word the asker may act on: "refused", "not-found")."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class RouteTooLarge(ConnectionError):
    """A message too large to route between controllers."""


def agent_channel(classroom_id: str) -> str:
    """The channel of the controller that holds ``classroom_id``'s agent."""
    return "cba_" + hashlib.sha256(classroom_id.encode()).hexdigest()[:40]


def node_channel(node: str) -> str:
    """A controller's reply channel."""
    return "cbn_" + hashlib.sha256(node.encode()).hexdigest()[:40]


@dataclass
class RouterCounters:
    """What the router has done, for tests and metrics."""

    routed: int = 0  # commands this controller sent to another's agent
    delivered: int = 0  # commands it delivered for another controller
    timeouts: int = 0
    refused: int = 0  # too large to route
    bad_payloads: int = 0
    parts_dropped: int = 0
    reconnects: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class _Parts:
    started: float
    total: int
    texts: dict[int, str]


class Router:
    """Sends commands to agents held by other controllers, and delivers theirs."""

    def __init__(self, url: str, node: str, hub: AgentHub, on_leader_event: LeaderEvent) -> None:
        self._conninfo = libpq_conninfo(url)
        self.node = node
        self._reply_channel = node_channel(node)
        self._hub = hub
        self._on_leader_event = on_leader_event
        self._wanted: set[str] = {self._reply_channel}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._parts: dict[str, _Parts] = {}
        self._sender: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._send_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()  # set once the listener's first LISTENs are in
        self._applied: set[str] = set()  # the channels the listening connection LISTENs on
        self._applied_changed = asyncio.Condition()
        self.counters = RouterCounters()
        self.serve_leader: LeaderServe | None = None  # set by the node: the leader's answers

    async def start(self) -> None:
        """Start listening (the reply channel, and whatever ``hold`` asked for)."""
        self._listener = asyncio.create_task(self._listen(), name="cluster-router")

    async def stop(self) -> None:
        """Stop listening; pending requests fail."""
        for task in [t for t in (self._listener,) if t is not None] + list(self._deliveries):
            task.cancel()
        if self._listener is not None:
            await asyncio.gather(self._listener, *self._deliveries, return_exceptions=True)
        self._listener = None
        for fut in self._pending.values():
            fut.cancel()
        if self._sender is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._sender.close()
            self._sender = None

    # -- what this controller holds ------------------------------------------------------

    def hold(self, classroom_id: str) -> None:
        """The agent registered here: commands for it come here."""
        self._wanted.add(agent_channel(classroom_id))

    async def held(self, classroom_id: str, timeout: float = 2.0) -> bool:
        """Wait until commands for ``classroom_id`` reach this controller (the listening
        connection LISTENs on its channel); whether that happened within ``timeout``.

        A notification sent before the LISTEN is lost, so an agent's registration is
        acknowledged only after this: a console action or a join routed the moment the
        agent is online must reach it."""
        channel = agent_channel(classroom_id)
        try:
            async with self._applied_changed:
                await asyncio.wait_for(
                    self._applied_changed.wait_for(
                        lambda: channel in self._applied or channel not in self._wanted
                    ),
                    timeout,
                )
        except TimeoutError:
            log.warning(
                "router: not yet listening for %s after %.0f s (database slow or "
                "unreachable); commands from other controllers may miss it until it is",
                classroom_id,
                timeout,
            )
            return False
        return channel in self._applied and channel in self._wanted

    def release(self, classroom_id: str) -> None:
        """The agent left this controller."""
        self._wanted.discard(agent_channel(classroom_id))

    def lead(self, leading: bool) -> None:
        """Hear (or stop hearing) what the other controllers tell the leader."""
        if leading:
            self._wanted.add(LEADER_CHANNEL)
        else:
            self._wanted.discard(LEADER_CHANNEL)

    # -- asking ------------------------------------------------------------------------

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send ``body`` to the agent through the controller that holds it; its reply."""
        answer = await self._ask(classroom_id, body, timeout)
        try:
            return envelope.decode(str(answer["env"]).encode())
        except (ProtocolError, KeyError) as err:
            raise ConnectionError(f"agent {classroom_id!r}: a routed reply was bad: {err}") from err

    async def send(self, classroom_id: str, body: Body, correlation_id: str | None = None) -> str:
        """Send one-way, as a hub's send is: returns once the database took it, without
        waiting for the holding controller (a schedule push to an agent whose controller
        just died must not hold up the orchestrator's pass)."""
        env = envelope.make(body, "controller", correlation_id)
        doc = {
            "k": "req",
            "id": env.id,
            "to": self._reply_channel,
            "cid": classroom_id,
            "reply": False,
            "env": envelope.encode(env).decode(),
        }
        try:
            await self._publish(agent_channel(classroom_id), doc)
        except (psycopg.Error, OSError) as err:
            raise ConnectionError(
                f"agent {classroom_id!r}: cannot route through the database: {err}"
            ) from err
        self.counters.routed += 1
        return env.id

    async def tell_leader(self, event: dict[str, Any]) -> None:
        """An event for the leader (``registered``, ``lessons``, ``floor``); dropped with a
        log line when the database cannot take it (the leader's idle pass catches up)."""
        try:
            await self._publish(LEADER_CHANNEL, event)
        except (psycopg.Error, OSError, RouteTooLarge) as err:
            log.warning("could not tell the leader %s: %s", event.get("k"), err)

    async def ask_leader(
        self, kind: str, payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Ask the leading controller (``kind``: what its ``serve_leader`` answers); its
        answer, or ``ConnectionError`` / ``TimeoutError`` saying why not."""
        rid = uuid.uuid4().hex
        doc = {"k": "lreq", "id": rid, "to": self._reply_channel, "what": kind, "p": payload}
        answer = await self._await_answer(
            rid, LEADER_CHANNEL, doc, timeout, f"the leading controller ({kind})"
        )
        if not answer.get("ok"):
            raise LeaderRefused(
                str(answer.get("error", "refused")), str(answer.get("code", "refused"))
            )
        result = answer.get("r")
        if not isinstance(result, dict):
            raise ConnectionError(f"the leading controller's answer to {kind} was not an object")
        return result

    async def _await_answer(
        self, rid: str, channel: str, doc: dict[str, Any], timeout: float, who: str
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            try:
                await self._publish(channel, doc)
            except (psycopg.Error, OSError) as err:
                raise ConnectionError(f"{who}: cannot route through the database: {err}") from err
            self.counters.routed += 1
            try:
                # The other side waits ``timeout``; give its answer time to travel.
                return await asyncio.wait_for(future, timeout + 2.0)
            except TimeoutError:
                self.counters.timeouts += 1
                raise TimeoutError(
                    f"{who}: no controller answered within {timeout + 2.0:.0f} s (is it online?)"
                ) from None
        finally:
            self._pending.pop(rid, None)

    async def _ask(self, classroom_id: str, body: Body, timeout: float) -> dict[str, Any]:
        rid = uuid.uuid4().hex
        env = envelope.make(body, "controller")
        doc = {
            "k": "req",
            "id": rid,
            "to": self._reply_channel,
            "cid": classroom_id,
            "reply": True,
            "timeout": timeout,
            "env": envelope.encode(env).decode(),
        }
        answer = await self._await_answer(
            rid, agent_channel(classroom_id), doc, timeout, f"agent {classroom_id!r}"
        )
        if not answer.get("ok"):
            error = str(answer.get("error", "refused"))
            if answer.get("timeout"):
                raise TimeoutError(error)
            raise ConnectionError(error)
        return answer

    # -- the wire ----------------------------------------------------------------------

    async def _publish(self, channel: str, doc: dict[str, Any]) -> None:
        """NOTIFY ``doc`` on ``channel``, in parts when it is too large for one."""
        text = json.dumps(doc, separators=(",", ":"))  # ASCII: a character is a byte
        if len(text) > MAX_ROUTED_CHARS:
            self.counters.refused += 1
            raise RouteTooLarge(
                f"{doc.get('k')} message of {len(text)} bytes is over the "
                f"{MAX_ROUTED_CHARS} bytes one controller can pass to another"
            )
        if len(text) <= NOTIFY_MAX_BYTES:
            payloads = [text]
        else:
            pid = uuid.uuid4().hex
            cuts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
            payloads = [
                json.dumps({"k": "part", "id": pid, "i": i, "n": len(cuts), "d": cut})
                for i, cut in enumerate(cuts)
            ]
        async with self._send_lock:
            for attempt in (1, 2):  # a connection the server dropped is made again once
                try:
                    conn = await self._sending()
                    async with conn.transaction():  # the parts arrive together, in order
                        for payload in payloads:
                            await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                    return
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    await self._drop_sender()
                    if attempt == 2:
                        raise

    async def _sending(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._sender is None or self._sender.closed:
            self._sender = await psycopg.AsyncConnection.connect(
                self._conninfo,
                **connect_kwargs(f"classbridge-router-send {self.node}"),  # type: ignore[arg-type]
            )
        return self._sender

    async def _drop_sender(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._sender.close()
        self._sender = None

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    **connect_kwargs(f"classbridge-router {self.node}"),  # type: ignore[arg-type]
                )
            except (psycopg.Error, OSError) as err:
                log.warning("router: database unreachable (%s); trying again", err)
                await asyncio.sleep(RECONNECT_S)
                continue
            applied = self._applied
            applied.clear()
            try:
                async with conn:
                    while True:
                        changed = False
                        for channel in applied - self._wanted:
                            await conn.execute(f"UNLISTEN {channel}")
                            applied.discard(channel)
                        for channel in self._wanted - applied:
                            await conn.execute(f"LISTEN {channel}")
                            applied.add(channel)
                            changed = True
                        self.listening.set()
                        if changed:
                            async with self._applied_changed:
                                self._applied_changed.notify_all()
                        async for note in conn.notifies(timeout=LISTEN_POLL_S):
                            self._heard(note.channel, note.payload)
                        self._expire_parts()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as err:
                # Notifications sent meanwhile are lost: their askers time out.
                self.listening.clear()
                self._applied.clear()
                self.counters.reconnects += 1
                log.warning("router: lost the listening connection (%s); reconnecting", err)
                await asyncio.sleep(RECONNECT_S)

    def _heard(self, channel: str, payload: str) -> None:
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("k") == "part":
                whole = self._assemble(doc)
                if whole is None:
                    return
                doc = json.loads(whole)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
        except (ValueError, KeyError, TypeError) as err:
            self._bad(f"{channel}: {err}")
            return
        kind = doc.get("k")
        if channel == LEADER_CHANNEL and kind == "lreq":
            task = asyncio.create_task(self._serve(doc))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        elif channel == LEADER_CHANNEL:
            try:
                self._on_leader_event(doc)
            except Exception:
                log.exception("router: the leader's handling of %s failed; carrying on", kind)
        elif kind == "req":
            task = asyncio.create_task(self._deliver(doc))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        elif kind == "rep":
            future = self._pending.get(str(doc.get("id")))
            if future is not None and not future.done():
                future.set_result(doc)
        else:
            self._bad(f"{channel}: unknown kind {kind!r}")

    def _assemble(self, doc: dict[str, Any]) -> str | None:
        pid, i, n, text = str(doc["id"]), int(doc["i"]), int(doc["n"]), str(doc["d"])
        if not 0 <= i < n or n * PART_CHARS > MAX_ROUTED_CHARS + PART_CHARS:
            raise ValueError(f"part {i} of {n} is out of range")
        parts = self._parts.setdefault(pid, _Parts(time.monotonic(), n, {}))
        parts.texts[i] = text
        if len(parts.texts) < parts.total:
            return None
        del self._parts[pid]
        return "".join(parts.texts[k] for k in range(parts.total))

    def _expire_parts(self) -> None:
        now = time.monotonic()
        for pid in [p for p, parts in self._parts.items() if now - parts.started > PARTS_TTL_S]:
            del self._parts[pid]
            self.counters.parts_dropped += 1
            log.warning("router: a message's parts did not all arrive in %.0f s", PARTS_TTL_S)

    def _bad(self, what: str) -> None:
        self.counters.bad_payloads += 1
        log.warning("router: a notification that does not decode, dropped: %s", what)

    async def _serve(self, doc: dict[str, Any]) -> None:
        """Another controller's request of the leader: answer it on its reply channel."""
        rid, to, what = str(doc.get("id")), str(doc.get("to")), str(doc.get("what"))
        answer: dict[str, Any] = {"k": "rep", "id": rid, "ok": False}
        payload = doc.get("p")
        if self.serve_leader is None:
            answer.update(error=f"{self.node} does not answer the leader's requests")
        elif not isinstance(payload, dict):
            self._bad(f"leader request {rid}: its payload is not an object")
            answer.update(error="the request's payload is not an object")
        else:
            try:
                answer.update(ok=True, r=await self.serve_leader(what, payload))
                self.counters.delivered += 1
            except LeaderRefused as err:
                answer.update(error=str(err), code=err.code)
            except (ProtocolError, KeyError, ValueError, TypeError) as err:
                self._bad(f"leader request {rid} ({what}): {err}")
                answer.update(error=f"the request did not decode on {self.node}: {err}")
        try:
            await self._publish(to, answer)
        except (psycopg.Error, OSError, RouteTooLarge) as err:
            log.warning("router: could not answer the leader request %s (%s): %s", rid, what, err)

    async def _deliver(self, doc: dict[str, Any]) -> None:
        """A command for an agent held here: pass it on, and answer the asker."""
        rid, to, cid = str(doc.get("id")), str(doc.get("to")), str(doc.get("cid"))
        answer: dict[str, Any] = {"k": "rep", "id": rid, "ok": False}
        try:
            env = envelope.decode(str(doc["env"]).encode())
            if doc.get("reply"):
                timeout = min(float(doc.get("timeout", 20.0)), 120.0)
                reply = await self._hub.request(cid, env.body, timeout)
                answer.update(ok=True, env=envelope.encode(reply).decode())
            else:
                await self._hub.send(cid, env.body, env.correlation_id)
                self.counters.delivered += 1
                return  # one-way: nobody waits for an answer
            self.counters.delivered += 1
        except TimeoutError:
            answer.update(error=f"agent {cid!r} did not answer on {self.node}", timeout=True)
        except ConnectionError as err:
            if not doc.get("reply"):
                log.info("router: one-way message for %s not delivered: %s", cid, err)
                return
            answer.update(error=f"{err} (on {self.node})")
        except (ProtocolError, KeyError, ValueError) as err:
            self._bad(f"request {rid}: {err}")
            answer.update(error=f"the routed command did not decode on {self.node}: {err}")
        try:
            await self._publish(to, answer)
        except (psycopg.Error, OSError, RouteTooLarge) as err:
            log.warning("router: could not answer %s for %s: %s", rid, cid, err)
