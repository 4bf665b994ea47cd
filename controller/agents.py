"""What the controller does with each message an agent sends."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from controller.alerts import record_heartbeat_alerts
from controller.db.models import Classroom, Lesson
from controller.db.session import utcnow
from controller.errors import ControllerError, EnrolmentRefused
from controller.health_history import HealthSampler
from controller.keys import KeyBook, ServerKeys
from controller.network_profiles import effective_profile, profile_document
from controller.orchestrator import Orchestrator
from controller.presence import Presence
from controller.registry import enrol
from controller.relay.room import SignallingError
from protocols.envelope import Envelope
from protocols.messages import (
    Body,
    CommandAck,
    EnrolRequest,
    EnrolResult,
    ErrorReply,
    Heartbeat,
    HeartbeatAck,
    LessonReport,
    Register,
    RegisterAck,
    SdpAnswer,
    SdpOffer,
)

log = logging.getLogger(__name__)


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
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._key_book = key_book
        self._presence = presence
        self._orchestrator = orchestrator
        self.upload_url = upload_url
        self.health_history = HealthSampler()

    async def enrol(self, request: EnrolRequest) -> EnrolResult:
        """Consume a one-time token and admit the agent's key."""
        with self._sessions() as db:
            try:
                classroom_id = enrol(db, request.token, request.public_key)
            except EnrolmentRefused as err:
                log.warning("enrolment refused: %s", err)
                return EnrolResult(accepted=False, reason=str(err))
        self._key_book.add(request.public_key, classroom_id)
        log.info("classroom %s enrolled (host %s)", classroom_id, request.hostname)
        return EnrolResult(accepted=True, classroom_id=classroom_id)

    async def handle(self, classroom_id: str, env: Envelope) -> Body | None:
        """Dispatch one message from an authenticated agent."""
        body = env.body
        if isinstance(body, Register):
            return self._register(classroom_id, body)
        if isinstance(body, Heartbeat):
            return self._heartbeat(classroom_id, body)
        if isinstance(body, SdpOffer):
            return await self._offer(classroom_id, body)
        if isinstance(body, LessonReport):
            self._report(classroom_id, body)
            return None
        if isinstance(body, CommandAck):
            log.info("late ack from %s for %s: ok=%s", classroom_id, body.command, body.ok)
            return None
        return ErrorReply(code="unexpected", message=f"controller does not accept {env.type!r}")

    def _register(self, classroom_id: str, body: Register) -> Body:
        if body.classroom_id != classroom_id:
            return ErrorReply(
                code="sender-mismatch",
                message=f"registered as {body.classroom_id!r} with the key of "
                f"{classroom_id!r}; re-enrol this agent",
            )
        with self._sessions() as db:
            room = db.get(Classroom, classroom_id)
            if room is None:
                return ErrorReply(
                    code="unknown-classroom", message=f"classroom {classroom_id!r} was deleted"
                )
            room.online = True
            room.last_seen_at = utcnow()
            room.agent_version = body.agent_version
            room.profile_name = body.profile_name
            room.profile_digest = body.profile_digest
            room.inventory = [d.model_dump() for d in body.inventory]
            db.commit()
            network_profile = self._network_profile(db, classroom_id)
        self._presence.registered(classroom_id, body.active_lesson_id)
        self._orchestrator.agent_registered(classroom_id)
        log.info("agent %s registered (profile %s)", classroom_id, body.profile_name)
        return RegisterAck(
            heartbeat_interval_s=self._presence.heartbeat_interval,
            upload_url=self.upload_url,
            upload_token=self._keys.upload_token(classroom_id),
            server_time=utcnow().timestamp(),
            network_profile=network_profile,
        )

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

    def _heartbeat(self, classroom_id: str, body: Heartbeat) -> Body:
        received_at = utcnow().timestamp()
        if not self._presence.seen(classroom_id):
            return ErrorReply(code="not-registered", message="register with this controller")
        with self._sessions() as db:
            room = db.get(Classroom, classroom_id)
            if room is not None:
                now = utcnow()
                room.last_seen_at = now
                room.online = True
                room.health = body.model_dump(mode="json")
                record_heartbeat_alerts(db, classroom_id, room.health, now)
                self.health_history.record(db, classroom_id, room.health, now)
                db.commit()
        return HeartbeatAck(seq=body.seq, received_at=received_at, server_time=utcnow().timestamp())

    async def _offer(self, classroom_id: str, body: SdpOffer) -> Body:
        relay = self._orchestrator.relay_for(body.lesson_id)
        if relay is None:
            return ErrorReply(
                code="no-lesson", message=f"lesson {body.lesson_id!r} is not under way here"
            )
        with self._sessions() as db:
            lesson = db.get(Lesson, body.lesson_id)
            if lesson is None or classroom_id not in lesson.classroom_ids:
                return ErrorReply(
                    code="not-in-lesson",
                    message=f"{classroom_id!r} is not in lesson {body.lesson_id!r}",
                )
        try:
            sdp = await relay.answer(classroom_id, body.sdp, body.tracks)
        except (SignallingError, ValueError) as err:
            log.warning("offer from %s refused: %s", classroom_id, err)
            return ErrorReply(code="bad-offer", message=str(err))
        return SdpAnswer(lesson_id=body.lesson_id, sdp=sdp)

    def _report(self, classroom_id: str, body: LessonReport) -> None:
        with self._sessions() as db:
            lesson = db.get(Lesson, body.lesson_id)
            if lesson is None or classroom_id not in lesson.classroom_ids:
                log.warning(
                    "report from %s for foreign lesson %s dropped", classroom_id, body.lesson_id
                )
                return None
            reports = dict(lesson.reports or {})
            reports[classroom_id] = [t.model_dump(mode="json") for t in body.tracks]
            lesson.reports = reports
            db.commit()
        return None

    def offline(self, classroom_id: str) -> None:
        """Presence declared the agent offline."""
        with self._sessions() as db:
            room = db.get(Classroom, classroom_id)
            if room is not None:
                room.online = False
                db.commit()
