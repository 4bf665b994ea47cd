"""The controller's state: classrooms, lessons and their recordings (SQLAlchemy 2)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every controller table."""


class Classroom(Base):
    """A recording classroom (录播教室) and the agent enrolled for it."""

    __tablename__ = "classroom"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    school: Mapped[str] = mapped_column(String(200), default="", index=True)
    public_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    enrol_token_hash: Mapped[str | None] = mapped_column(String(64))
    enrol_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    # The control protocol minor its agent last registered with (None: not since 0024);
    # a lesson goes to Janus only when every agent of it reads a placement (minor 6).
    protocol_minor: Mapped[int | None] = mapped_column(Integer)
    profile_name: Mapped[str] = mapped_column(String(200), default="")
    profile_digest: Mapped[str] = mapped_column(String(64), default="")
    inventory: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    health: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # Its own network profile (overrides its school's); None: the school's, if any.
    network_profile: Mapped[str | None] = mapped_column(String(64))


class UploadToken(Base):
    """An upload token of a classroom: only its SHA-256 is kept. A row with no
    ``retire_at`` is current; a replaced one works until ``retire_at`` (the grace for
    uploads under way). Re-enrolment and revocation delete the classroom's rows."""

    __tablename__ = "upload_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classroom.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertState(Base):
    """One condition raised from a classroom's heartbeats, kept while it lasts (and while
    it is silenced), with who acknowledged it and until when it is silenced."""

    __tablename__ = "alert_state"
    __table_args__ = (UniqueConstraint("classroom_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classroom.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(100))  # e.g. "disk_low", "device_lost:camera"
    message: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    silenced_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A sustained kind (loss, round trip) seen but not yet long enough: the row waits
    # inactive from this time (controller.agents.alerts.SUSTAINED).
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClassroomHealthSample(Base):
    """A classroom's health from one heartbeat, kept at most once a minute for a week
    (controller.agents.health_history) so the console can chart the last hours."""

    __tablename__ = "classroom_health_sample"
    __table_args__ = (Index("ix_classroom_health_sample_classroom_at", "classroom_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    cpu: Mapped[float | None] = mapped_column(Float)
    mem: Mapped[float | None] = mapped_column(Float)
    temp: Mapped[float | None] = mapped_column(Float)
    audio_dbfs: Mapped[float | None] = mapped_column(Float)
    send_kbps: Mapped[float | None] = mapped_column(Float)
    rtt_ms: Mapped[float | None] = mapped_column(Float)
    clock_offset_ms: Mapped[float | None] = mapped_column(Float)


class Lesson(Base):
    """One scheduled lesson: a lead classroom teaching receiving classrooms."""

    __tablename__ = "lesson"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="synchronous", index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    lead_classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"), index=True)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(16), default="scheduled", index=True)
    reports: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    subject: Mapped[str] = mapped_column(String(64), default="", index=True)
    teacher_id: Mapped[str | None] = mapped_column(String(64), index=True)
    series_id: Mapped[str | None] = mapped_column(String(32), index=True)
    pairing_id: Mapped[str | None] = mapped_column(String(64), index=True)
    term_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Broadcast only: receivers watch and are not sent back (set by the kind, or switched
    # on in an emergency).
    one_way: Mapped[bool] = mapped_column(Boolean, default=False)
    # The video ladder rung the planner placed the lesson on (None: no network profile).
    rung: Mapped[str | None] = mapped_column(String(32))

    receivers: Mapped[list[LessonReceiver]] = relationship(
        back_populates="lesson", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def classroom_ids(self) -> list[str]:
        """The lead first, then every receiving classroom."""
        return [self.lead_classroom_id, *(r.classroom_id for r in self.receivers)]


class LessonReceiver(Base):
    """A receiving classroom (接收教室) of a lesson."""

    __tablename__ = "lesson_receiver"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classroom.id"), primary_key=True, index=True
    )
    # The room's assistant teacher (辅导教师): booked and counted like the lead teacher.
    assistant_teacher_id: Mapped[str | None] = mapped_column(String(64), index=True)
    lesson: Mapped[Lesson] = relationship(back_populates="receivers")


class LessonPushTargets(Base):
    """Where a lesson's programme is pushed live (直播推流): the scheduler's list of
    ``{"name", "url"}`` (``controller.live_push``). The addresses hold the platforms'
    stream keys: only the lead's agent is sent them; every view shows them redacted."""

    __tablename__ = "lesson_push_targets"

    lesson_id: Mapped[str] = mapped_column(
        ForeignKey("lesson.id", ondelete="CASCADE"), primary_key=True
    )
    targets: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    changed_by: Mapped[str] = mapped_column(String(120), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmergencySwitch(Base):
    """The emergency switch (线下线上瞬时切换): every lesson of a school (``school``), or of
    the county (None), from ``starts_at`` until ``until`` (None: until switched back) is
    held online only: broadcast one way and published for students at home
    (``controller.emergency``). ``lessons`` lists what the switch changed, so switching
    back restores exactly those."""

    __tablename__ = "emergency_switch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    school: Mapped[str | None] = mapped_column(String(120), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(500), default="")
    set_by: Mapped[str] = mapped_column(String(120))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(120))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # [{"lesson": id, "one_way_before": bool, "published_before": bool}]
    lessons: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)


class LessonPlayback(Base):
    """A delivery lesson on demand (专递课堂 by video): its room plays a library item in
    class instead of receiving a live lead (``controller.delivery``), and reports how much
    it played; the lesson counts as held by that."""

    __tablename__ = "lesson_playback"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    # None once the item itself is deleted (retention, erasure): what was played stays.
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("library_item.id", ondelete="SET NULL"), index=True
    )
    assigned_by: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    played_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str] = mapped_column(String(500), default="")


class LessonFloor(Base):
    """Who has the floor (课堂互动) in a lesson: the receiving classroom called on, the
    muted ones, and ``seq``, raised by one on every change (``controller.floor.store``)."""

    __tablename__ = "lesson_floor"

    lesson_id: Mapped[str] = mapped_column(
        ForeignKey("lesson.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, default=0)
    speaking: Mapped[str | None] = mapped_column(String(64))
    muted: Mapped[list[str]] = mapped_column(JSON, default=list)
    duck_db: Mapped[float] = mapped_column(Float, default=-18.0)
    # "console:<user>", "scheduler", or "keys:<classroom>".
    changed_by: Mapped[str] = mapped_column(String(120), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LessonMediaRoom(Base):
    """A lesson's VideoRoom on a Janus instance (``controller.media_plane``), kept so a
    restarted controller, or a new leader, adopts the room instead of moving the lesson.
    No secret is stored: the room's secret and PIN are derived from the instance's admin
    secret and the room id (``controller.media_plane.room_keys``)."""

    __tablename__ = "lesson_media_room"

    lesson_id: Mapped[str] = mapped_column(
        ForeignKey("lesson.id", ondelete="CASCADE"), primary_key=True
    )
    instance: Mapped[str] = mapped_column(String(64))
    room: Mapped[int] = mapped_column(BigInteger)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LessonEvent(Base):
    """One logged state transition or notable event of a lesson."""

    __tablename__ = "lesson_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_state: Mapped[str] = mapped_column(String(16), default="")
    to_state: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class StoredSegment(Base):
    """A segment file received from an agent, verified against its checksum."""

    __tablename__ = "stored_segment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"))
    track: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Recording(Base):
    """One playable file per track of a lesson, stitched from its segments."""

    __tablename__ = "recording"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"), index=True)
    track: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    codec: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    segments: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PublishedRecording(Base):
    """A track's recording published to the resource library (资源库): who, and when.

    Kept apart from ``Recording`` so re-stitching a lesson (which replaces its rows) does
    not unpublish it."""

    __tablename__ = "published_recording"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"), primary_key=True)
    track: Mapped[str] = mapped_column(String(64), primary_key=True)
    published_by: Mapped[str] = mapped_column(String(64), default="")
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LibraryItem(Base):
    """One item of the resource library (资源库): a lesson's track, or a clip cut from one
    (微课), with its catalogue metadata and where it stands in review.

    ``status`` is pending (asked for, awaiting a reviewer), approved (listed and
    exportable), rejected or unpublished; a pending or approved item's media outlives its
    lesson's retention (``controller.library.store``)."""

    __tablename__ = "library_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # recording | clip
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"))
    track: Mapped[str] = mapped_column(String(64))
    # A clip's own file and its cut of the source track; None for a whole recording.
    path: Mapped[str | None] = mapped_column(Text)
    clip_start_s: Mapped[float | None] = mapped_column(Float)
    clip_end_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    codec: Mapped[str | None] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(64))
    grade: Mapped[str] = mapped_column(String(32), default="")
    chapter: Mapped[str] = mapped_column(String(200), default="")
    teacher: Mapped[str] = mapped_column(String(64), default="")
    school: Mapped[str] = mapped_column(String(200), default="", index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_reason: Mapped[str] = mapped_column(String(500), default="")
    unpublished_by: Mapped[str | None] = mapped_column(String(64))
    unpublished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unpublish_reason: Mapped[str] = mapped_column(String(500), default="")


class UploadSession(Base):
    """A multipart upload an agent has open or finished, so it can resume after restarts."""

    __tablename__ = "upload_session"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"))
    rel: Mapped[str] = mapped_column(String(300))  # "<track>/<segment>" or "manifest.json"
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    backend_id: Mapped[str] = mapped_column(Text)
    part_size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | stored | failed
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecordingManifest(Base):
    """A classroom's manifest of a lesson, with the coverage computed from it."""

    __tablename__ = "recording_manifest"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"), primary_key=True)
    manifest: Mapped[dict[str, object]] = mapped_column(JSON)
    coverage: Mapped[dict[str, object]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Deletion(Base):
    """Audit record of one object deleted from storage: what, why and by whom."""

    __tablename__ = "deletion"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    lesson_id: Mapped[str] = mapped_column(String(32), index=True)
    classroom_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    # Byte counts are BIGINT: PostgreSQL's INTEGER stops at 2 GiB, a lesson's file may not.
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))


class School(Base):
    """A school, with the uplink its recording classrooms share."""

    __tablename__ = "school"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    uplink_kbps: Mapped[int] = mapped_column(Integer, default=0)  # 0: not known
    # The network profile of its classrooms (a classroom's own profile overrides it).
    network_profile: Mapped[str | None] = mapped_column(String(64))
    # Its level (学段: primary, junior…, controller.timetable.school_levels); None: not set.
    level: Mapped[str | None] = mapped_column(String(16))


class NetworkProfileRecord(Base):
    """A named network profile (网络配置): VLAN, subnet, bandwidth and video ladder.

    ``document`` is the profile as JSON, validated by ``parse_network_profile``."""

    __tablename__ = "network_profile"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict[str, object]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Teacher(Base):
    """A teacher who leads lessons."""

    __tablename__ = "teacher"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    school_id: Mapped[str] = mapped_column(String(64), default="")


class Term(Base):
    """A school term (学期) with its calendar; dates are local to ``timezone``."""

    __tablename__ = "term"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # The quotas the set-up declared (``controller.timetable.quotas``); None: the defaults.
    quotas: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)


class TermDay(Base):
    """A holiday, or a make-up working day (调休) that runs as a given weekday."""

    __tablename__ = "term_day"

    term_id: Mapped[str] = mapped_column(ForeignKey("term.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # holiday | makeup
    runs_as: Mapped[int | None] = mapped_column(Integer)  # 0 = Monday, for make-up days
    name: Mapped[str] = mapped_column(String(200), default="")


class BellPeriod(Base):
    """One period of a school's bell schedule (作息时间), local times "HH:MM"."""

    __tablename__ = "bell_period"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))


class Pairing(Base):
    """A pairing (结对): a supporting school with one or two supported schools."""

    __tablename__ = "pairing"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    supporting_school_id: Mapped[str] = mapped_column(String(64))
    supported_school_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)


class LessonSeries(Base):
    """A weekly recurrence on a period of a term, with dates left out."""

    __tablename__ = "lesson_series"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    term_id: Mapped[str] = mapped_column(ForeignKey("term.id"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(64), default="")
    teacher_id: Mapped[str | None] = mapped_column(String(64))
    pairing_id: Mapped[str | None] = mapped_column(String(64))
    lead_classroom_id: Mapped[str] = mapped_column(String(64))
    receivers: Mapped[list[str]] = mapped_column(JSON, default=list)
    weekday: Mapped[int] = mapped_column(Integer)
    period: Mapped[int] = mapped_column(Integer)
    exceptions: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates skipped
    # Receiving room → its assistant teacher (辅导教师); None: none named.
    assistants: Mapped[dict[str, str] | None] = mapped_column(JSON)


class ConsoleUser(Base):
    """A person (or an integration) who uses the console or the API, with one role."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    # Argon2id PHC string; empty: the account cannot sign in with a password (tokens only).
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The school (Classroom.school) the account is limited to; None: the whole county.
    school: Mapped[str | None] = mapped_column(String(200), index=True)
    # Set by an administrator: no sign-in, no session, no API token until enabled again.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInFailure(Base):
    """Failed sign-ins in a row from one address for one user name (controller.auth.throttle)."""

    __tablename__ = "sign_in_failure"

    remote: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebSession(Base):
    """A signed-in browser: only the SHA-256 of its cookie is kept."""

    __tablename__ = "web_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token for scripts and integrations, acting as its user with its role."""

    __tablename__ = "api_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # None: never expires (tokens made before expiry existed).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One audited action: a change through the API, a sign-in, sign-out or lock-out, or a
    read of children's images or voices (playback, catalogue, patrol). Append-only: on
    SQLite, triggers (migration 0011) refuse UPDATE, and DELETE of rows younger than
    ``controller.auth.audit.KEEP_DAYS_FLOOR`` days."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(64), default="", index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")


class NotifySubscription(Base):
    """Who is told of alerts, and how (controller.notify): one channel (DingTalk or WeCom
    group robot, e-mail) for one school, or the county (``school`` None). ``config`` holds
    the channel's settings, secrets included; the API never returns them."""

    __tablename__ = "notify_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    school: Mapped[str | None] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # dingtalk | wecom | email
    config: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    min_severity: Mapped[str] = mapped_column(String(16), default="warning")
    # Local "HH:MM" bounds in ``timezone``; both None: no quiet hours.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # An escalation recipient is told of alerts nobody acknowledged within this many
    # minutes, instead of each alert as it is raised.
    escalation: Mapped[bool] = mapped_column(Boolean, default=False)
    escalate_after_min: Mapped[int] = mapped_column(Integer, default=15)
    # A flapping alert raised again within this many minutes of its last message is not
    # sent again.
    hold_down_min: Mapped[int] = mapped_column(Integer, default=10)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The channel's health: when it started failing, its last error and last success.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotifyOutbox(Base):
    """One message owed to one subscription: written before it is sent, so a restart
    loses nothing; unique per alert raise, so a raise is sent once."""

    __tablename__ = "notify_outbox"
    __table_args__ = (
        UniqueConstraint("subscription_id", "alert_id", "kind", "raised_at"),
        Index("ix_notify_outbox_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("notify_subscription.id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert_state.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # raise | escalation | skipped
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|dropped
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LessonNote(Base):
    """An inspector's note (评课) pinned to a moment of a lesson, live or recorded."""

    __tablename__ = "lesson_note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    at_s: Mapped[float] = mapped_column(Float)  # seconds from the lesson's start
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LessonScore(Base):
    """One reviewer's score of a lesson against the county's rubric (one per reviewer)."""

    __tablename__ = "lesson_score"
    __table_args__ = (UniqueConstraint("lesson_id", "author"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    rubric: Mapped[dict[str, object]] = mapped_column(JSON)  # the rubric as scored against
    scores: Mapped[dict[str, int]] = mapped_column(JSON)  # criterion id → points
    total: Mapped[int] = mapped_column(Integer)
    out_of: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewRubric(Base):
    """The county's rubric for scoring lessons (one row, id 1); none: the default."""

    __tablename__ = "review_rubric"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    criteria: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LessonTalk(Base):
    """One classroom's talk timeline of a lesson (S-T analysis): a code per second from
    ``start`` (``protocols.talk``), as its agent reported it. No sound is kept: none came."""

    __tablename__ = "lesson_talk"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    classroom_id: Mapped[str] = mapped_column(ForeignKey("classroom.id"), primary_key=True)
    start: Mapped[float] = mapped_column(Float)  # epoch seconds of the first code
    codes: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LessonAnalysis(Base):
    """A lesson's S-T figures (controller.analytics), made again as each room's timeline
    arrives; the reports read these, never the timelines."""

    __tablename__ = "lesson_analysis"

    lesson_id: Mapped[str] = mapped_column(ForeignKey("lesson.id"), primary_key=True)
    interval_s: Mapped[int] = mapped_column(Integer)
    samples: Mapped[str] = mapped_column(Text)  # one T or S per interval
    rt: Mapped[float | None] = mapped_column(Float)
    ch: Mapped[float | None] = mapped_column(Float)
    # practice (练习型) | lecture (讲授型) | dialogue (对话型) | mixed (混合型); None: unheard
    teaching_type: Mapped[str | None] = mapped_column(String(16), index=True)
    teacher_talk_s: Mapped[int] = mapped_column(Integer)
    student_talk_s: Mapped[int] = mapped_column(Integer)
    # Per receiving room: {"classroom", "turns", "talk_s"}.
    rooms: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentRelease(Base):
    """An agent release (controller.releases): its wheel and the detached Ed25519
    signature made with the release key, which is kept off the controller."""

    __tablename__ = "agent_release"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    wheel: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[str] = mapped_column(String(128))  # base64 of the 64-byte signature
    key_id: Mapped[str] = mapped_column(String(64))  # which release public key verifies it
    notes: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(64), default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReleaseRing(Base):
    """The update ring (pilot, early, general) of a school or of one classroom; a
    classroom's own ring overrides its school's; neither: general."""

    __tablename__ = "release_ring"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # school | classroom
    scope_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ring: Mapped[str] = mapped_column(String(16))
    set_by: Mapped[str] = mapped_column(String(64), default="")
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReleaseRollout(Base):
    """A rollout of one release, ring by ring, inside a daily maintenance window."""

    __tablename__ = "release_rollout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(ForeignKey("agent_release.version"))
    state: Mapped[str] = mapped_column(String(16), index=True)  # running|paused|done|cancelled
    ring: Mapped[str] = mapped_column(String(16))  # the ring being updated
    # Local "HH:MM" bounds in ``timezone``; the window may wrap midnight.
    window_start: Mapped[str] = mapped_column(String(5))
    window_end: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # An agent offered the release must report healthy on it within this many seconds.
    health_deadline_s: Mapped[int] = mapped_column(Integer, default=600)
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReleaseTarget(Base):
    """One classroom's progress in a rollout."""

    __tablename__ = "release_target"

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("release_rollout.id", ondelete="CASCADE"), primary_key=True
    )
    classroom_id: Mapped[str] = mapped_column(
        ForeignKey("classroom.id", ondelete="CASCADE"), primary_key=True
    )
    ring: Mapped[str] = mapped_column(String(16))
    # pending | offered | healthy | rolled_back | failed
    state: Mapped[str] = mapped_column(String(16), default="pending")
    from_version: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    offered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
