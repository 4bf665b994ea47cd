"""What the controller does with each message an agent sends."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import lesson_soon, raise_alert, raise_offline
from controller.agents.health_history import HealthSampler
from controller.agents.heartbeat_writer import HeartbeatWriter
from controller.agents.hub import LATER, Later
from controller.agents.keys import KeyBook, ServerKeys
from controller.agents.presence import Presence
from controller.agents.registry import enrol
from controller.analytics.store import store_talk
from controller.auth import audit
from controller.common.errors import ControllerError, EnrolmentRefused, NotFound, NotLead
from controller.db.models import Classroom, Lesson
from controller.db.session import utcnow
from controller.delivery.store import record_report as record_playback
from controller.floor.requests import keys_change
from controller.lessons.media_rooms import NO_LIVE_MEDIA
from controller.lessons.orchestrator import Orchestrator
from controller.network.profiles import effective_profile, profile_document
from controller.recordings.upload_tokens import issue, retire_others
from controller.relay.exceptions import RelayUnavailable
from controller.relay.room import SignallingError
from protocols.envelope import Envelope
from protocols.messages import (
    Body,
    CommandAck,
    EnrolRequest,
    EnrolResult,
    ErrorReply,
    FloorRequest,
    FloorState,
    Heartbeat,
    HeartbeatAck,
    LessonReport,
    Register,
    RegisterAck,
    SdpAnswer,
    SdpOffer,
)

log = logging.getLogger(__name__)

KEY_REPLACED = "key_replaced"  # the alert raised when re-enrolment replaces a key


class AgentMessages:
    """Handlers for agent → controller messages; each returns the reply, if any."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keys: ServerKeys,
        key_book: KeyBook,
        presence: Presence,
        orchestrator: Orchestrator,
        upload_url: str,
        upload_token_grace: timedelta = timedelta(hours=1),
        tls_trust_pem: str = "",
        agent_endpoints: tuple[str, ...] = (),
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._key_book = key_book
        self._presence = presence
        self._orchestrator = orchestrator
        self.upload_url = upload_url
        self.upload_token_grace = upload_token_grace
        self._tls_trust_pem = tls_trust_pem
        self._agent_endpoints = list(agent_endpoints)  # several controllers: all of them
        self.health_history = HealthSampler()
        self.heartbeats = HeartbeatWriter(
            sessions, self.health_history, self._mark_offline, presence.is_online
        )
        self.floor_refused = 0  # FloorRequests refused (not the lead, not live, …)
        self._report_lock = threading.Lock()

    async def enrol(self, request: EnrolRequest) -> EnrolResult:
        """Consume a one-time token and admit the agent's key."""

        def work() -> str:
            with self._sessions() as db:
                classroom_id, replaced = enrol(db, request.token, request.public_key)
                if replaced is not None:
                    self._key_replaced(db, classroom_id, replaced, request)
                return classroom_id

        try:
            classroom_id = await asyncio.to_thread(work)
        except EnrolmentRefused as err:
            log.warning("enrolment refused: %s", err)
            return EnrolResult(accepted=False, reason=str(err))
        self._key_book.add(request.public_key, classroom_id)
        log.info("classroom %s enrolled (host %s)", classroom_id, request.hostname)
        # The agent pins this for the HTTPS API, as it pinned the CURVE key in its token.
        # With several controllers, the agent learns them all and fails over between them.
        return EnrolResult(
            accepted=True,
            classroom_id=classroom_id,
            tls_ca_pem=self._tls_trust_pem,
            controllers=self._agent_endpoints,
        )

    @staticmethod
    def _key_replaced(db: Session, classroom_id: str, old: str, request: EnrolRequest) -> None:
        """Re-enrolment replaced a working key: an alert for the dashboard and an audit row,
        since a leaked enrolment token looks exactly like this."""
        new = request.public_key
        log.warning("classroom %s re-enrolled: agent key %s… replaced", classroom_id, old[:8])
        message = (
            f"classroom {classroom_id!r} was enrolled again from host {request.hostname!r} and "
            f"its agent key replaced (old {old[:8]}…, new {new[:8]}…). If nobody re-installed "
            "that classroom PC, someone else used its enrolment token: issue a new one with "
            f"'classroom-controller classroom add {classroom_id}' and enrol the real PC again"
        )
        raise_alert(db, classroom_id, KEY_REPLACED, message, utcnow())
        audit.record(
            db,
            "classroom_key_replaced",
            username=f"agent:{classroom_id}"[:64],
            target=classroom_id,
            detail={"old_key": old[:8], "new_key": new[:8], "hostname": request.hostname},
        )

    def handle_now(self, classroom_id: str, env: Envelope) -> Body | Later | None:
        """Answer on the hub's receive loop what needs no waiting (heartbeats: most of a
        fleet's traffic); ``LATER`` sends the rest to ``handle``."""
        body = env.body
        if isinstance(body, Heartbeat):
            return self._beat(classroom_id, body)
        return LATER

    async def handle(self, classroom_id: str, env: Envelope) -> Body | None:
        """Dispatch one message from an authenticated agent."""
        body = env.body
        if isinstance(body, Register):
            return await self._register(classroom_id, body, env.m)
        if isinstance(body, Heartbeat):
            return self._beat(classroom_id, body)
        if isinstance(body, SdpOffer):
            return await self._offer(classroom_id, body)
        if isinstance(body, LessonReport):
            await asyncio.to_thread(self._report, classroom_id, body)
            return None
        if isinstance(body, FloorRequest):
            return await self._floor_request(classroom_id, body)
        if isinstance(body, CommandAck):
            log.info("late ack from %s for %s: ok=%s", classroom_id, body.command, body.ok)
            return None
        return ErrorReply(code="unexpected", message=f"controller does not accept {env.type!r}")

    async def _register(self, classroom_id: str, body: Register, minor: int) -> Body:
        if body.classroom_id != classroom_id:
            return ErrorReply(
                code="sender-mismatch",
                message=f"registered as {body.classroom_id!r} with the key of "
                f"{classroom_id!r}; re-enrol this agent",
            )
        # The database work in a worker thread (a period boundary brings every agent's
        # registration at once); presence and the orchestrator stay on the event loop.
        stored = await asyncio.to_thread(self._store_registration, classroom_id, body, minor)
        if stored is None:
            return ErrorReply(
                code="unknown-classroom", message=f"classroom {classroom_id!r} was deleted"
            )
        network_profile, upload_token = stored
        self._presence.registered(classroom_id, body.active_lesson_id)
        self.heartbeats.forget(classroom_id)
        self._orchestrator.agent_registered(classroom_id)
        elsewhere = self._orchestrator.elsewhere
        if elsewhere is not None:
            # Acknowledged once a command routed from another controller reaches it.
            await elsewhere.agent_routable(classroom_id)
        log.info("agent %s registered (profile %s)", classroom_id, body.profile_name)
        return RegisterAck(
            heartbeat_interval_s=self._presence.heartbeat_interval,
            upload_url=self.upload_url,
            upload_token=upload_token,
            server_time=utcnow().timestamp(),
            network_profile=network_profile,
        )

    def _store_registration(
        self, classroom_id: str, body: Register, minor: int
    ) -> tuple[dict[str, object] | None, str] | None:
        """Record the agent's version (and protocol minor: whether it can use Janus),
        profile and inventory; its network profile and a fresh upload token, or None when
        the classroom no longer exists."""
        with self._sessions() as db:
            room = db.get(Classroom, classroom_id)
            if room is None:
                return None
            room.online = True
            room.last_seen_at = utcnow()
            room.agent_version = body.agent_version
            room.protocol_minor = minor
            room.profile_name = body.profile_name
            room.profile_digest = body.profile_digest
            room.inventory = [d.model_dump() for d in body.inventory]
            db.commit()
            network_profile = self._network_profile(db, classroom_id)
            # A fresh token on every registration: the ack is the only time the agent can
            # learn it (only its hash is kept); the previous ones run out after the grace.
            upload_token = issue(db, classroom_id)
            retire_others(db, classroom_id, upload_token, self.upload_token_grace)
            return network_profile, upload_token

    @staticmethod
    def _network_profile(db: Session, classroom_id: str) -> dict[str, object] | None:
        """The classroom's effective network profile as JSON; a stored profile that no
        longer validates is logged and left out rather than failing the registration."""
        try:
            profile = effective_profile(db, classroom_id)
        except ControllerError as err:
            log.error("classroom %s registers without its network profile: %s", classroom_id, err)
            return None
        return profile_document(profile) if profile is not None else None

    def _beat(self, classroom_id: str, body: Heartbeat) -> Body:
        received_at = time.time()
        if not self._presence.seen(classroom_id):
            return ErrorReply(code="not-registered", message="register with this controller")
        # Written in the next batch (at most one transaction a second, on a worker
        # thread): a commit per heartbeat on the event loop once stalled the relay and
        # the hub for 1.7 s at a period boundary, when every room uploads at once.
        self.heartbeats.beat(classroom_id, body)
        return HeartbeatAck(seq=body.seq, received_at=received_at, server_time=time.time())

    async def _offer(self, classroom_id: str, body: SdpOffer) -> Body:
        elsewhere = self._orchestrator.elsewhere
        if self._orchestrator.relay_for(body.lesson_id) is None and elsewhere is not None:
            # Several controllers: the leader relays every lesson; it answers the offer,
            # and the agent's media flows to it directly.
            routed = await elsewhere.offer_to_leader(classroom_id, body)
            if routed is not None:
                return routed
        return await self.answer_offer(classroom_id, body)

    async def answer_offer(self, classroom_id: str, body: SdpOffer) -> Body:
        """Answer a media offer from this controller's own relay, or say why not."""
        relay = self._orchestrator.relay_for(body.lesson_id)
        if relay is None:
            return ErrorReply(
                code="no-lesson", message=f"lesson {body.lesson_id!r} is not under way here"
            )

        def in_lesson() -> bool:
            with self._sessions() as db:
                lesson = db.get(Lesson, body.lesson_id)
                return lesson is not None and classroom_id in lesson.classroom_ids

        if not await asyncio.to_thread(in_lesson):
            return ErrorReply(
                code="not-in-lesson",
                message=f"{classroom_id!r} is not in lesson {body.lesson_id!r}",
            )
        media = self._orchestrator.media
        local = media.no_live_media(body.lesson_id) if media is not None else None
        if local is not None:
            # No Janus instance fits and the built-in relay is not allowed to carry it.
            return ErrorReply(
                code="no-live-media",
                message=f"{NO_LIVE_MEDIA} ({local}); record it in the classroom as told",
            )
        try:
            sdp = await relay.answer(classroom_id, body.sdp, body.tracks)
        except (SignallingError, ValueError) as err:
            log.warning("offer from %s refused: %s", classroom_id, err)
            return ErrorReply(code="bad-offer", message=str(err))
        except RelayUnavailable as err:  # the agent offers again when its link fails
            log.warning("offer from %s not answered: %s", classroom_id, err)
            return ErrorReply(code="relay-unavailable", message=str(err))
        return SdpAnswer(lesson_id=body.lesson_id, sdp=sdp)

    async def _floor_request(self, classroom_id: str, body: FloorRequest) -> Body:
        """Apply a lead room's floor keys and spread the new floor; answers it, or why not."""

        def work() -> Body:
            with self._sessions() as db:
                return keys_change(db, classroom_id, body)

        try:
            state = await asyncio.to_thread(work)
        except ControllerError as err:
            self.floor_refused += 1
            code = {NotFound: "no-lesson", NotLead: "not-lead"}.get(type(err), "floor-refused")
            log.warning("floor request from %s refused: %s", classroom_id, err)
            return ErrorReply(code=code, message=str(err))
        assert isinstance(state, FloorState)
        self._orchestrator.floor_changed(state)
        return state

    def _report(self, classroom_id: str, body: LessonReport) -> None:
        # The lead's and the receivers' reports arrive together at a lesson's end, each on
        # a worker thread: the read-modify-write of ``lesson.reports`` is serialised (a
        # lock here; a row lock on PostgreSQL for several controllers), or one report
        # overwrites the other and the lesson waits out its report timeout without it.
        with self._report_lock, self._sessions() as db:
            lesson = db.get(Lesson, body.lesson_id, with_for_update=True)
            if lesson is None or classroom_id not in lesson.classroom_ids:
                log.warning(
                    "report from %s for foreign lesson %s dropped", classroom_id, body.lesson_id
                )
                return None
            reports = dict(lesson.reports or {})
            reports[classroom_id] = [t.model_dump(mode="json") for t in body.tracks]
            lesson.reports = reports
            if body.talk is not None:  # who talked, second by second (S-T analysis)
                store_talk(db, lesson, classroom_id, body.talk)
            db.commit()
            if body.playback is not None:  # a delivery lesson on demand: how it played
                record_playback(db, lesson.id, body.playback)
        return None

    def offline(self, classroom_id: str) -> None:
        """Presence declared the agent offline: written with the next heartbeat batch."""
        self.heartbeats.offline(classroom_id)

    @staticmethod
    def _mark_offline(db: Session, classroom_id: str, now: datetime) -> None:
        # A PC switched off after school is no alert; one lost near or in a lesson is
        # (and controller.agents.alerts raises it later, as the next lesson nears).
        if lesson_soon(db, classroom_id, now):
            raise_offline(
                db,
                classroom_id,
                "the agent stopped sending heartbeats; check the classroom PC's power "
                "and network, then 'systemctl status classroom-agent' on it",
                now,
            )
