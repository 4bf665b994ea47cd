"""Typed message bodies exchanged between agents and the controller.

Every body is a pydantic model with a ``TYPE`` name; the envelope carries that name on the
wire. Fields a body does not know are kept, not refused, so that a peer one minor
version newer keeps working (``protocols.compat``); the golden messages in
``tests/protocols/golden`` pin every field each side sends.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from protocols.talk import CODES_PATTERN, MAX_TALK_SECONDS
from protocols.tls import MAX_TRUST_PEM_CHARS


class Body(BaseModel):
    """Base of every message body."""

    # "allow": a newer peer's optional fields are kept (and sent on), never refused.
    model_config = ConfigDict(extra="allow", frozen=True)
    TYPE: ClassVar[str] = ""


# --- enrolment and registration -------------------------------------------------------


class EnrolRequest(Body):
    """An agent presents its one-time token and its new public key."""

    TYPE: ClassVar[str] = "enrol.request"
    token: str = Field(min_length=8, max_length=200)
    public_key: str = Field(min_length=40, max_length=40)
    hostname: str = Field(max_length=255)
    agent_version: str = Field(max_length=64)


MAX_CONTROLLERS = 16
ControlEndpoint = Annotated[str, Field(max_length=300, pattern=r"^tcp://[^\s/]+:[0-9]{1,5}$")]


class EnrolResult(Body):
    """The controller accepts or refuses an enrolment."""

    TYPE: ClassVar[str] = "enrol.result"
    accepted: bool
    classroom_id: str = ""
    reason: str = ""
    # The certificate the agent pins for the controller's HTTPS (PEM: the county CA, or
    # the operator's anchor). Empty on refusals; left off the wire then.
    tls_ca_pem: str = Field(default="", max_length=MAX_TRUST_PEM_CHARS)
    # Several controllers: every controller's control socket, in the order the agent tries
    # them. Empty: only the one it enrolled with; left off the wire then.
    controllers: list[ControlEndpoint] = Field(default_factory=list, max_length=MAX_CONTROLLERS)

    @model_serializer(mode="wrap")
    def _omit_empty_pin(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc: dict[str, Any] = handler(self)
        for name in ("tls_ca_pem", "controllers"):
            if not doc.get(name):
                doc.pop(name, None)
        return doc


class DeviceInfo(Body):
    """One device in the agent's inventory."""

    name: str
    kind: Literal["camera", "panel", "microphone", "display"]
    driver: str
    role: str = ""
    width: int = 0
    height: int = 0
    fps: int = 0
    bitrate: int = 0


class Register(Body):
    """An agent announces itself after (re)connecting."""

    TYPE: ClassVar[str] = "agent.register"
    classroom_id: str
    agent_version: str
    profile_name: str
    profile_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    inventory: list[DeviceInfo]
    active_lesson_id: str | None = None


class RegisterAck(Body):
    """The controller's answer to ``Register``: timing, upload credentials and the
    classroom's network profile."""

    TYPE: ClassVar[str] = "agent.register.ack"
    heartbeat_interval_s: float = Field(gt=0, le=60)
    upload_url: str
    upload_token: str
    server_time: float
    # The classroom's effective NetworkProfile as JSON (protocols.network_profile), or
    # None when neither it nor its school has one.
    network_profile: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_profile(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left off the wire when None, so an agent built before the field existed (its
        # models forbid unknown fields) still reads the acks of unprofiled classrooms.
        doc: dict[str, Any] = handler(self)
        if doc.get("network_profile") is None:
            doc.pop("network_profile", None)
        return doc


class UploadTokenUpdate(Body):
    """A fresh upload token for the classroom (rotation, over the authenticated channel).

    The agent stores it, uploads with it from then on, and acknowledges it with
    ``CommandAck``; the token it replaces keeps working for ``grace_s`` seconds after
    that, so uploads under way finish.
    """

    TYPE: ClassVar[str] = "agent.upload_token"
    upload_token: str = Field(min_length=32, max_length=200)
    grace_s: float = Field(ge=0, le=86400)


class DeviceState(Body):
    """The live state of one device."""

    state: Literal["ok", "starting", "lost", "failed", "idle"]
    detail: str = ""
    # Microphones: the level meter's reading, dBFS.
    level_dbfs: float | None = None


class TrackStats(Body):
    """Media counters for one track, sent or received."""

    track: str
    direction: Literal["send", "recv"]
    frames: int = 0
    bytes: int = 0
    fps: float = 0.0
    bitrate_bps: float = 0.0
    # From RTCP: packets lost on the way (percent over the last few seconds) and, for a
    # sent track, the round trip to the relay. None until measured.
    loss_pct: float | None = None
    rtt_ms: float | None = None


class PushTarget(Body):
    """One live platform a lesson is pushed to (protocols.live_push): a name people know
    it by, and the push address the platform gave (``rtmp://host/app/stream-key``)."""

    name: str = Field(min_length=1, max_length=40)
    url: str = Field(max_length=1024, pattern=r"^rtmps?://[^\s/]+/\S+$")


class PushStatus(Body):
    """How one live push of the lesson under way is doing, as the lead's agent sees it."""

    lesson_id: str = Field(max_length=64)
    name: str = Field(max_length=40)
    where: str = Field(max_length=1100)  # the address with its stream key redacted
    state: Literal["idle", "connecting", "live", "retrying", "stopped"]
    live_since: float | None = None  # wall clock
    bytes: int = Field(default=0, ge=0)
    reconnects: int = Field(default=0, ge=0)
    last_error: str = Field(default="", max_length=500)


def not_any(value: object) -> bool:
    """Whether a field's value is empty (None, or an empty list, dict or string)."""
    return not value


class Heartbeat(Body):
    """Periodic health report from an agent."""

    TYPE: ClassVar[str] = "agent.heartbeat"
    seq: int = Field(ge=0)
    cpu_pct: float
    mem_pct: float
    disk_free_bytes: int
    disk_pct: float
    temperature_c: float | None = None
    devices: dict[str, DeviceState] = {}
    media: list[TrackStats] = []
    lesson_id: str | None = None
    clock_offset_ms: float | None = None  # controller minus agent, NTP-style
    rtt_ms: float | None = None
    # Conditions a technician should act on, by code (e.g. "disk_low") → what and what to do.
    alerts: dict[str, str] = {}
    # Why the classroom is not ready for a lesson (devices, disk, clock…); empty: ready.
    readiness: dict[str, str] = {}
    uploads_pending: int = 0
    uploads_pending_bytes: int = 0
    # Network counters of the whole box since boot.
    net_bytes_sent: int | None = None
    net_bytes_recv: int | None = None
    # The room microphone's level, dBFS (the loudest microphone when there are several).
    audio_level_dbfs: float | None = None
    # The lesson's live pushes (protocols.live_push.PushStatus), at the lead.
    # Left off the wire when no push runs: most heartbeats, and their bytes stay as they
    # were before pushes were reported. (A field rule, not a model serializer: a province's
    # controller serialises 2,000 heartbeats a second, and a Python serializer per model
    # cost it a dict round trip each.)
    pushes: list[PushStatus] = Field(default_factory=list, max_length=8, exclude_if=not_any)


class HeartbeatAck(Body):
    """The controller's answer to a heartbeat; carries its clock for offset estimates."""

    TYPE: ClassVar[str] = "agent.heartbeat.ack"
    seq: int
    server_time: float  # t3: when the controller sent this answer
    received_at: float | None = None  # t2: when the controller received the heartbeat


# --- commands -------------------------------------------------------------------------


class Subscription(Body):
    """One remote track an agent should receive in a lesson."""

    source_classroom: str
    track: str
    kind: Literal["video", "audio"]
    width: int = 0
    height: int = 0
    fps: int = 0
    # The device's role in its room (teacher, student, content, room…), for the layouts.
    role: str = Field(default="", max_length=32)

    @model_serializer(mode="wrap")
    def _omit_absent_role(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left off the wire when empty, for agents built before the field existed.
        doc: dict[str, Any] = handler(self)
        if not doc.get("role"):
            doc.pop("role", None)
        return doc


class RoomLabel(Body):
    """How a classroom is named on the other rooms' screens (school and room)."""

    classroom_id: str
    school: str = Field(default="", max_length=120)
    name: str = Field(default="", max_length=120)


class FloorState(Body):
    """Who has the floor in a lesson (课堂互动): sent by the controller to every room.

    ``speaking`` is the receiving classroom called on: large on the lead's mid-screen and
    heard at full level; the other rooms are turned down by ``duck_db``. ``muted`` rooms
    are not heard at all. ``seq`` orders changes from the console and from a room's own
    keys: a state with a lower ``seq`` than one already applied is ignored.
    """

    TYPE: ClassVar[str] = "lesson.floor"
    lesson_id: str
    seq: int = Field(ge=0)
    speaking: str | None = None
    muted: list[str] = Field(default_factory=list, max_length=64)
    duck_db: float = Field(default=-18.0, ge=-60.0, le=0.0)
    # Who changed it: "console:<user>", "scheduler", or "keys:<classroom>".
    by: str = Field(default="", max_length=120)


class FloorRequest(Body):
    """A room changed the floor with its own keys; the controller applies and spreads it."""

    TYPE: ClassVar[str] = "lesson.floor.request"
    lesson_id: str
    speaking: str | None = None
    muted: list[str] = Field(default_factory=list, max_length=64)


class PlaybackSource(Body):
    """A recording from the resource library that a room plays in class (专递课堂 on
    demand): the agent fetches it over HTTPS from ``route`` with its upload token, checks
    it against ``sha256`` when given, and plays it on its screens and speakers as the
    join's subscriptions (the recorded room's teacher camera and sound)."""

    item_id: int
    title: str = Field(default="", max_length=200)
    route: str = Field(max_length=200)  # a path on the controller's upload URL
    sha256: str = Field(default="", max_length=64)
    duration_s: float = 0.0


class PlaybackReport(Body):
    """How a played recording went: seconds played of its duration, and why it stopped
    early (empty when it played to its end or the lesson's)."""

    item_id: int
    played_s: float
    duration_s: float
    started_at: float | None = None  # the controller's clock, when the first frame played
    error: str = Field(default="", max_length=500)


class JanusPlacement(Body):
    """Where a lesson's media goes when a Janus instance carries it: the instance's API,
    the lesson's VideoRoom and the PIN that admits a classroom to it.

    The room's secret (to manage it) stays on the controller; the PIN admits the agent to
    this one room and nothing more, and is kept out of ``repr``.
    """

    api_url: str = Field(max_length=1024, pattern=r"^https?://\S+$")
    room: int = Field(ge=1, le=2**53 - 1)
    pin: str = Field(default="", max_length=128, repr=False)
    instance: str = Field(default="", max_length=40)  # its name in the controller's config


class JoinLesson(Body):
    """Join a lesson: publish these local tracks, receive these remote ones."""

    TYPE: ClassVar[str] = "cmd.join"
    lesson_id: str
    role: Literal["lead", "receiver"]
    publish: list[str]
    subscribe: list[Subscription]
    start_at: float
    end_at: float
    # The ladder rung the controller placed the lesson on (None: no network profile);
    # the agent keeps its video encoders at or below it.
    rung: str | None = None
    # School and room names of the classrooms in the lesson, for the tiles' labels.
    rooms: list[RoomLabel] = Field(default_factory=list, max_length=64)
    # The floor when the agent joins (a rejoin mid-lesson keeps who was called on).
    floor: FloorState | None = None
    # The lead only: live platforms to push the programme to (protocols.live_push).
    push_targets: list[PushTarget] = Field(default_factory=list, max_length=4)
    # A recording to play instead of live media (专递课堂 on demand); nothing is published.
    playback: PlaybackSource | None = None
    # The Janus room carrying the lesson's media (None: the controller's built-in relay);
    # a new placement mid-lesson (its instance died) comes as a new join.
    media: JanusPlacement | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_room_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left off the wire when empty, so an agent built before these fields existed (its
        # models forbid unknown fields) still reads joins that do not use them.
        doc: dict[str, Any] = handler(self)
        if not doc.get("rooms"):
            doc.pop("rooms", None)
        if doc.get("floor") is None:
            doc.pop("floor", None)
        if not doc.get("push_targets"):
            doc.pop("push_targets", None)
        if doc.get("playback") is None:
            doc.pop("playback", None)
        if doc.get("media") is None:
            doc.pop("media", None)
        return doc


class LeaveLesson(Body):
    """Leave a lesson and close its media."""

    TYPE: ClassVar[str] = "cmd.leave"
    lesson_id: str
    reason: str = ""


class StartRecording(Body):
    """Start recording every local and received track of a lesson."""

    TYPE: ClassVar[str] = "cmd.record.start"
    lesson_id: str


class StopRecording(Body):
    """Finish the lesson's recording and upload it."""

    TYPE: ClassVar[str] = "cmd.record.stop"
    lesson_id: str
    upload: bool = True


class CommandAck(Body):
    """The agent's answer to a command; ``correlation_id`` names the command."""

    TYPE: ClassVar[str] = "cmd.ack"
    command: str
    ok: bool
    error: str = ""


class AgentAction(Body):
    """A technician's remote action on the classroom PC, from the console."""

    TYPE: ClassVar[str] = "cmd.action"
    action: Literal["doctor", "logs", "ptz", "restart"]
    lines: int = Field(default=200, ge=1, le=5000)  # logs
    camera: str = ""  # ptz: the camera device
    preset: str = ""  # ptz: the preset name in the camera's profile


class ActionResult(Body):
    """What a remote action did; ``correlation_id`` names the action."""

    TYPE: ClassVar[str] = "agent.action.result"
    action: str
    ok: bool
    output: str = ""  # what a technician reads (doctor's list, the log lines, …)
    data: dict[str, Any] = {}


class ScheduleUpdate(Body):
    """The classroom's lessons for the next days, kept by the agent for offline work."""

    TYPE: ClassVar[str] = "schedule.update"
    lessons: list[JoinLesson]
    horizon_s: float


# --- WebRTC signalling ----------------------------------------------------------------


class TrackMid(Body):
    """Which SDP media section carries which track."""

    mid: str
    track: str
    kind: Literal["video", "audio"]
    direction: Literal["send", "recv"]
    source_classroom: str


class SdpOffer(Body):
    """An agent's offer for its lesson peer connection."""

    TYPE: ClassVar[str] = "rtc.offer"
    lesson_id: str
    sdp: str
    tracks: list[TrackMid]


class SdpAnswer(Body):
    """The controller relay's answer."""

    TYPE: ClassVar[str] = "rtc.answer"
    lesson_id: str
    sdp: str


# --- reports --------------------------------------------------------------------------


class TrackReport(Body):
    """End-of-lesson figures for one track."""

    track: str
    kind: Literal["video", "audio"]
    direction: Literal["send", "recv"]
    source_classroom: str
    frames: int
    first_counter: int | None = None
    last_counter: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    # Inclusive [first, last] runs of burned-in frame counters seen (video only).
    counter_ranges: list[tuple[int, int]] = []


class TalkTimeline(Body):
    """Who talked in one classroom, a code per second from ``start`` (the controller's
    clock, a whole second); the codes are explained in :mod:`protocols.talk`."""

    start: float = Field(ge=0)
    codes: str = Field(max_length=MAX_TALK_SECONDS, pattern=CODES_PATTERN)


class LessonReport(Body):
    """What an agent sent and received during a lesson, and who talked (S-T analysis)."""

    TYPE: ClassVar[str] = "lesson.report"
    lesson_id: str
    tracks: list[TrackReport]
    # Added in minor 6: a release-0.5 controller never sees it (protocols.compat drops it).
    talk: TalkTimeline | None = None
    # A lesson that played a library recording: how that went.
    playback: PlaybackReport | None = None

    @model_serializer(mode="wrap")
    def _omit_no_talk(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc: dict[str, Any] = handler(self)
        if doc.get("talk") is None:
            doc.pop("talk", None)
        if doc.get("playback") is None:
            doc.pop("playback", None)
        return doc


class ErrorReply(Body):
    """Sent back when a message could not be handled."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str


ALL_BODIES: tuple[type[Body], ...] = (
    EnrolRequest,
    EnrolResult,
    Register,
    RegisterAck,
    UploadTokenUpdate,
    Heartbeat,
    HeartbeatAck,
    JoinLesson,
    LeaveLesson,
    StartRecording,
    StopRecording,
    CommandAck,
    AgentAction,
    ActionResult,
    ScheduleUpdate,
    SdpOffer,
    SdpAnswer,
    LessonReport,
    FloorState,
    FloorRequest,
    ErrorReply,
)

BODY_TYPES: dict[str, type[Body]] = {cls.TYPE: cls for cls in ALL_BODIES}
