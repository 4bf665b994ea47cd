"""This controller as one of several on a PostgreSQL database: it leads or not, holds
some agents, and reaches the others' agents through the router.

On SQLite the daemon does not build one: the single controller runs its orchestrator
itself and talks to its own hub, as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from controller.agents.hub import AgentHub
from controller.agents.keys import KeyBook
from controller.agents.presence import Presence
from controller.cluster.key_sync import KeySync
from controller.cluster.leader import Leadership
from controller.cluster.online import ClusterOnline
from controller.cluster.routing import LeaderRefused, Router
from controller.lessons.orchestrator import Orchestrator
from controller.lessons.patrol import LeaderSaid, NotRelayed, PatrolApi
from controller.lessons.watch import LessonWatch
from protocols import envelope
from protocols.envelope import Envelope
from protocols.errors import ProtocolError
from protocols.messages import Body, ErrorReply, FloorState, SdpOffer

log = logging.getLogger(__name__)

OFFER_ROUTE_TIMEOUT_S = 12.0  # under the agent's own 15 s wait for its answer (edge_agent.session)
PATROL_ROUTE_TIMEOUT_S = 15.0  # a console viewer's answer, or the live list

OfferAnswer = Callable[[str, SdpOffer], Awaitable[Body]]


def node_name(control_port: int) -> str:
    """This controller's name among the others: host, control port and process id."""
    return f"{socket.gethostname()}:{control_port}/{os.getpid()}"


class ClusterHub:
    """The hub as the orchestrator, the API and the token rotator use it: an agent held
    here directly, any other through the controller that holds it."""

    def __init__(self, hub: AgentHub, router: Router) -> None:
        self._hub = hub
        self._router = router

    def is_routable(self, classroom_id: str) -> bool:
        """Whether the agent is held here; others may still be reached through routing."""
        return self._hub.is_routable(classroom_id)

    async def send(self, classroom_id: str, body: Body, correlation_id: str | None = None) -> str:
        """Send one-way, here or through the holding controller."""
        if self._hub.is_routable(classroom_id):
            try:
                return await self._hub.send(classroom_id, body, correlation_id)
            except ConnectionError as err:  # a stale route: the agent moved on
                log.info("agent %s not reachable here (%s); routing", classroom_id, err)
        return await self._router.send(classroom_id, body, correlation_id)

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send and await the agent's reply, here or through the holding controller."""
        if self._hub.is_routable(classroom_id):
            try:
                return await self._hub.request(classroom_id, body, timeout)
            except ConnectionError as err:
                log.info("agent %s not reachable here (%s); routing", classroom_id, err)
        return await self._router.request(classroom_id, body, timeout)


class ClusterNode:
    """Leadership, routing and cluster-wide presence for one controller."""

    def __init__(
        self,
        url: str,
        node: str,
        sessions: sessionmaker[Session],
        hub: AgentHub,
        presence: Presence,
    ) -> None:
        self.node = node
        self._sessions = sessions
        self.router = Router(url, node, hub, self._leader_event)
        self.hub = ClusterHub(hub, self.router)
        self.online = ClusterOnline(presence, sessions)
        self.leadership = Leadership(url, node, self._gained, self._lost)
        self._orchestrator: Orchestrator | None = None
        self._watch: LessonWatch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._keys: KeySync | None = None
        # The agents' media offers this controller answers while it leads (the relay is
        # the leader's): set by the daemon to the agent service's own answer.
        self.answer_offer: OfferAnswer | None = None
        self.router.serve_leader = self._serve_leader
        self.patrol: PatrolApi | None = None  # set by the daemon: patrol's leader side

    async def start(self, orchestrator: Orchestrator, key_book: KeyBook) -> None:
        """Route, watch presence and enrolled keys, and contend for leadership (which
        starts ``orchestrator`` while this controller leads)."""
        self._loop = asyncio.get_running_loop()
        self._keys = KeySync(self._sessions, key_book)
        await self._keys.start()
        self._orchestrator = orchestrator
        orchestrator.elsewhere = self
        await self.router.start()
        await self.online.start()
        # Lessons changed here must wake the leader when that is another controller.
        self._watch = LessonWatch(self._sessions, self._lessons_changed)
        await self.leadership.start()

    async def stop(self) -> None:
        """Stop leading (the orchestrator stops), routing and watching."""
        await self.leadership.stop()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.online.stop()
        await self.router.stop()
        if self._keys is not None:
            await self._keys.stop()

    async def _gained(self) -> None:
        assert self._orchestrator is not None
        self.router.lead(True)
        await self._orchestrator.start()

    async def _lost(self) -> None:
        assert self._orchestrator is not None
        self.router.lead(False)
        await self._orchestrator.stop()

    # -- what happens here, told to the leader (controller.lessons.links.Elsewhere) -------------

    def agent_registered(self, classroom_id: str) -> None:
        """Hold the agent's channel; tell the leader, if that is another controller."""
        self.router.hold(classroom_id)
        if not self.leadership.is_leader:
            self._tell({"k": "registered", "cid": classroom_id})

    async def agent_routable(self, classroom_id: str) -> None:
        """Return once commands routed from other controllers reach the agent here."""
        await self.router.held(classroom_id)

    async def offer_to_leader(self, classroom_id: str, offer: SdpOffer) -> Body | None:
        """An agent held here offers media for a lesson the leader relays: the leader's
        answer (or its refusal, as an ``ErrorReply``); None when this controller leads."""
        if self.leadership.is_leader:
            return None
        payload = {"cid": classroom_id, "env": envelope.encode(envelope.make(offer, "c")).decode()}
        try:
            answer = await self.router.ask_leader("offer", payload, OFFER_ROUTE_TIMEOUT_S)
            return envelope.decode(str(answer["env"]).encode()).body
        except LeaderRefused as err:
            return ErrorReply(code="no-lesson", message=f"the leading controller: {err}")
        except (ConnectionError, TimeoutError, KeyError, ProtocolError) as err:
            log.warning("media offer of %s not passed to the leader: %s", classroom_id, err)
            return ErrorReply(
                code="leader-unreachable",
                message=f"the leading controller did not answer this offer ({err}); "
                "the agent offers again",
            )

    async def _serve_leader(self, what: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Another controller's request of this one as leader."""
        if not self.leadership.is_leader:
            raise LeaderRefused(f"{self.node} does not lead now")
        if what.startswith("patrol."):
            return await self._serve_patrol(what, payload)
        if what != "offer":
            raise LeaderRefused(f"{self.node} does not answer {what!r}")
        if self.answer_offer is None:
            raise LeaderRefused(f"{self.node} has no relay to answer media offers")
        cid = str(payload["cid"])
        body = envelope.decode(str(payload["env"]).encode()).body
        if not isinstance(body, SdpOffer):
            raise ValueError(f"an offer request carried {type(body).__name__}")
        reply = await self.answer_offer(cid, body)
        return {"env": envelope.encode(envelope.make(reply, "controller")).decode()}

    async def _serve_patrol(self, what: str, payload: dict[str, Any]) -> dict[str, Any]:
        patrol = self.patrol
        if patrol is None:
            raise LeaderRefused(f"{self.node} serves no patrol")
        serve = {
            "patrol.live": patrol.serve_live,
            "patrol.watch": patrol.serve_watch,
            "patrol.watch_janus": patrol.serve_watch_janus,
            "patrol.answer": patrol.serve_answer,
            "patrol.unwatch": patrol.serve_unwatch,
        }.get(what)
        if serve is None:
            raise LeaderRefused(f"{self.node} does not answer {what!r}")
        try:
            return await serve(payload)
        except NotRelayed as err:
            raise LeaderRefused(str(err), "not-found") from err
        except LeaderSaid as err:
            raise LeaderRefused(str(err), "refused") from err

    # -- the leader, as patrol on this controller reaches it (controller.lessons.patrol) --------

    def leads_here(self) -> bool:
        """Whether this controller leads, and so relays, now."""
        return self.leadership.is_leader

    async def ask(self, what: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Ask the leader for patrol (``NotRelayed`` / ``LeaderSaid`` as it answered)."""
        try:
            return await self.router.ask_leader(what, payload, PATROL_ROUTE_TIMEOUT_S)
        except LeaderRefused as err:
            if err.code == "not-found":
                raise NotRelayed(str(err)) from None
            raise LeaderSaid(str(err)) from None

    def agent_offline(self, classroom_id: str) -> None:
        """Presence here declared the agent offline: commands for it no longer come here."""
        self.router.release(classroom_id)

    def floor_changed(self, state: FloorState) -> None:
        """A floor changed here; the leader sends it to the rooms that joined."""
        self._tell({"k": "floor", "state": state.model_dump(mode="json")})

    def _lessons_changed(self, classroom_ids: frozenset[str]) -> None:
        """A commit here changed lessons (any thread)."""
        if self.leadership.is_leader or self._loop is None:
            return  # the orchestrator's own watch has it
        event = {"k": "lessons", "cids": sorted(classroom_ids)}
        with contextlib.suppress(RuntimeError):  # the loop closed: stopping
            self._loop.call_soon_threadsafe(self._tell, event)

    def _tell(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(self.router.tell_leader(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the leader hears ----------------------------------------------------------

    def _leader_event(self, event: dict[str, Any]) -> None:
        orchestrator = self._orchestrator
        if orchestrator is None or not orchestrator.running:
            return
        kind = event.get("k")
        if kind == "registered":
            cid = str(event["cid"])
            self.online.heard(cid)
            orchestrator.agent_registered(cid, here=False)
        elif kind == "lessons":
            orchestrator.lessons_changed(frozenset(str(c) for c in event.get("cids", [])))
        elif kind == "floor":
            orchestrator.floor_changed(FloorState.model_validate(event["state"]))
        else:
            log.warning("leader: unknown event %r from another controller; dropped", kind)
