"""The orchestrator: drives each lesson through its states and commands the agents.

scheduled → preparing (agents join, media flows) → live (recording) → ending (agents stop
recording and leave) → recorded (reports in) → uploaded (every recording in storage).
An agent that appears late, or comes back after a drop, is joined into a live lesson.

It does not poll. Each pass computes when the next transition is due (a lesson to
prepare, to go live, to end; a grace or a report timeout to expire) and sleeps until
then, or until something wakes it: a lesson changed in this process (``LessonWatch``), an
agent registered, a command answered, a recording stored. An idle pass every ``idle_s``
picks up lessons another process changed. The passes' queries run on a worker thread;
commands and relay closes run on the event loop. Schedules are pushed to the agents whose
lessons changed (and to each agent as it registers), with a full sweep every
``SCHEDULE_SWEEP_S`` for the sliding two-week horizon.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import raise_offline
from controller.common.errors import ControllerError
from controller.db.models import Classroom, Lesson, LessonPlayback, LessonReceiver, Recording
from controller.db.session import as_utc, utcnow
from controller.delivery import store as delivery
from controller.emergency.store import PublisherFactory, apply_to_lesson
from controller.floor.store import floor_state, room_labels
from controller.lessons.links import AgentLink, Elsewhere, OnlineView
from controller.lessons.media_rooms import NO_LIVE_MEDIA, LessonRooms
from controller.lessons.scheduling import log_event, transition
from controller.lessons.watch import EVERY, LessonWatch
from controller.live_push.store import push_targets
from controller.media_plane.plane import MediaPlane, Replaced
from controller.relay.handle import RelayHandle
from controller.relay.room import LessonRelay
from controller.timetable.loading import LEAD_ROLES, RECEIVER_ROLES
from protocols.messages import (
    Body,
    CommandAck,
    FloorState,
    JoinLesson,
    LeaveLesson,
    ScheduleUpdate,
    StartRecording,
    StopRecording,
    Subscription,
)

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 20.0
SCHEDULE_HORIZON_S = 14 * 24 * 3600.0  # agents keep two weeks of lessons
SCHEDULE_SWEEP_S = 600.0  # every online agent's schedule compared, whatever changed
IDLE_S = 5.0  # the longest sleep: lessons changed by another process are seen this late
MIN_SLEEP_S = 0.02
STOP_WAIT_S = 10.0  # how long stop() waits for a pass under way
RETRY_S = 1.0  # a failed command's lesson is looked at again this soon
REPORT_TIMEOUT_S = 20.0


@dataclass
class LessonRun:
    """In-memory progress of one lesson in this controller instance."""

    lesson_id: str
    relay: RelayHandle
    joined: set[str] = field(default_factory=set)
    joining: set[str] = field(default_factory=set)
    recording: set[str] = field(default_factory=set)
    ended_at: float | None = None
    receivers_left: bool = False
    # What the joined agents were last told (times, one-way, live push targets), to re-join
    # them on a change.
    terms: tuple[float, bool, tuple[tuple[str, str], ...]] | None = None


class Orchestrator:
    """Ticks over the active lessons and issues join/record/stop/leave commands."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hub: AgentLink,
        presence: OnlineView,
        prepare_s: float = 5.0,
        leave_grace_s: float = 1.0,
        idle_s: float = IDLE_S,
        media: MediaPlane | None = None,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._presence = presence
        self.prepare_s = prepare_s
        self.leave_grace_s = leave_grace_s
        self._idle_s = idle_s
        # Written by the pass's worker thread and read on the loop: each access is one
        # dict or set operation (atomic under the GIL), and loops iterate over copies.
        self.runs: dict[str, LessonRun] = {}
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._pushed: dict[str, str] = {}
        self._dirty: set[str] = set()  # classrooms whose schedule may have changed
        self._next_sweep = 0.0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: LessonWatch | None = None
        self._stopping = False
        self.tick_errors = 0
        self.ticks = 0
        # Several controllers: where registrations and floor changes are told so that the
        # leader hears of them (controller.cluster); None on one controller.
        self.elsewhere: Elsewhere | None = None
        # Publishing for the emergency switch (controller.emergency); None: no HLS origin.
        self.publisher: PublisherFactory = lambda: None
        # Each lesson's relay: in this process by default, in the relay process under the
        # daemon (controller.relay.process.RelayProcess.open); called from a worker thread.
        self.new_relay: Callable[[str], RelayHandle] = LessonRelay
        # Lessons' rooms on Janus ([media_plane] backend = "janus"); None: the built-in relay.
        self.media: LessonRooms | None = None
        if media is not None:
            self.media = LessonRooms(media)
            self.media.on_decided = self.wake  # a lesson's placement is decided
            media.on_replaced = self._media_moved

    @property
    def running(self) -> bool:
        """Whether the passes run here (on several controllers: this one leads)."""
        return self._task is not None

    async def start(self) -> None:
        """Start the passes, and watch this process's lesson changes; again after
        ``stop()`` too (a controller that leads again)."""
        self._loop = asyncio.get_running_loop()
        if self.media is not None:
            self.media.bind(self._loop)
        self._stopping = False
        self._pushed.clear()
        self._next_sweep = 0.0
        self._watch = LessonWatch(self._sessions, self._lessons_changed)
        self._task = asyncio.create_task(self._run(), name="orchestrator")

    async def stop(self) -> None:
        """Stop the passes and close every relay."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._task is not None:
            # A pass under way finishes first: its thread cannot be cancelled, and must
            # not go on commanding agents and writing after the controller stopped.
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)
            except TimeoutError:
                log.warning("orchestrator pass still running after %.0f s; cancelled", STOP_WAIT_S)
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for run in list(self.runs.values()):
            await run.relay.close()
        self.runs.clear()
        if self.media is not None:
            self.media.forget_all()  # the rooms stay, for whoever orchestrates next

    def relay_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Each lesson under way here: its relay's per-feed counters."""
        return {lid: run.relay.stats() for lid, run in list(self.runs.items())}

    def relay_for(self, lesson_id: str) -> RelayHandle | None:
        """The relay of a lesson that is under way in this instance."""
        run = self.runs.get(lesson_id)
        return run.relay if run else None

    def relay_restarted(self, lesson_ids: list[str], reason: str) -> None:
        """The relay process died and was restarted: these lessons lost their media, so
        their agents are sent their join again (an agent that gets its join again offers its
        media anew) and each lesson's events carry an alert."""
        affected = [lid for lid in lesson_ids if lid in self.runs]
        for lid in affected:
            run = self.runs[lid]
            run.joined.clear()  # the next pass joins every online agent of the lesson again
            run.joining.clear()
        if not affected:
            return

        def work() -> None:
            with self._sessions() as db:
                for lid in affected:
                    log_event(db, lid, f"ALERT media lost: {reason}; restarted, agents re-offered")

        task = asyncio.create_task(asyncio.to_thread(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._wake.set()

    def wake(self) -> None:
        """Run a pass now (from the event loop's thread or any other)."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread
            with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                loop.call_soon_threadsafe(self._wake.set)
        else:
            self._wake.set()

    def _lessons_changed(self, classroom_ids: frozenset[str]) -> None:
        """A commit in this process changed lessons of these classrooms (any thread)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: stopping
            loop.call_soon_threadsafe(self._mark_dirty, classroom_ids)

    def lessons_changed(self, classroom_ids: Iterable[str]) -> None:
        """Another controller changed lessons of these classrooms (the event loop)."""
        self._mark_dirty(classroom_ids)

    def _mark_dirty(self, classroom_ids: Iterable[str]) -> None:
        self._dirty.update(classroom_ids)
        self._wake.set()

    async def _run(self) -> None:
        if self.media is not None:
            # Before the first pass, so a lesson under way keeps its room and its agents
            # stay where they are.
            try:
                for line in await self.media.adopt(self._sessions):
                    log.info("media plane at start: %s", line)
            except Exception:  # the lessons are placed anew, as if nothing was stored
                log.exception("media plane: stored rooms not adopted")
        while not self._stopping:
            self._wake.clear()  # before the pass: a wake during it runs the next at once
            delay = self._idle_s
            try:
                delay = await self.tick()
                if self._stopping:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.tick_errors += 1
                log.exception("orchestrator pass failed; carrying on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def tick(self) -> float:
        """Advance every lesson that is due, and push the schedules that changed;
        answers how long to sleep until the next transition is due."""
        self._loop = asyncio.get_running_loop()
        if self.media is not None:
            self.media.bind(self._loop)  # a pass places lessons through this loop
        self.ticks += 1
        # Lessons first: a controller that has just taken over as leader pushes every
        # online agent's schedule in its first pass, which takes seconds for a province's
        # agents, and a lesson falling due meanwhile must not wait for it.
        closes: list[RelayHandle] = []
        delay = await asyncio.to_thread(self._pass, closes)
        for relay in closes:
            await relay.close()
        await self.push_schedules()
        return delay

    def _pass(self, closes: list[RelayHandle]) -> float:
        """One pass over the due lessons (a worker thread); answers the next due time."""
        now = utcnow()
        horizon = now + timedelta(seconds=self.prepare_s)
        due = [self._idle_s]
        with self._sessions() as db:
            lessons = db.scalars(
                select(Lesson).where(
                    Lesson.state.in_(("scheduled", "preparing", "live", "ending", "recorded")),
                    Lesson.start_at <= horizon,
                )
            ).all()
            active = {lesson.id for lesson in lessons}
            for lesson in lessons:
                try:
                    after = self._advance(db, lesson, closes)
                except ControllerError as err:  # one lesson's fault must not stall the rest
                    db.rollback()
                    self.tick_errors += 1
                    log.error("lesson %s not advanced: %s", lesson.id, err)
                    continue
                if after is not None:
                    due.append(after)
            if self.media is not None:
                self.media.drop_others(db, active)  # cancelled while placed, say
            upcoming = db.scalar(
                select(Lesson.start_at)
                .where(Lesson.state == "scheduled", Lesson.start_at > horizon)
                .order_by(Lesson.start_at)
                .limit(1)
            )
        if upcoming is not None:
            due.append((as_utc(upcoming) - horizon).total_seconds())
        return max(MIN_SLEEP_S, min(due))

    def _due_in(self, lesson: Lesson, run: LessonRun) -> float | None:
        """Seconds until this lesson's next transition is due; None: only an event
        (a report, an upload) moves it."""
        now = utcnow()
        if lesson.state == "preparing":
            return (as_utc(lesson.start_at) - now).total_seconds()
        if lesson.state == "live":
            return (as_utc(lesson.end_at) - now).total_seconds()
        if lesson.state == "ending" and run.ended_at is not None:
            waited = time.monotonic() - run.ended_at
            if not run.receivers_left:
                return self.leave_grace_s - waited
            return REPORT_TIMEOUT_S - waited
        return None

    def _advance(self, db: Session, lesson: Lesson, closes: list[RelayHandle]) -> float | None:
        now = utcnow()
        start, end = as_utc(lesson.start_at), as_utc(lesson.end_at)
        if lesson.state == "scheduled":
            if now >= end:
                stored = db.scalar(select(Recording.id).where(Recording.lesson_id == lesson.id))
                if stored is not None:
                    transition(
                        db, lesson, "recorded", "agents recorded it from their cached schedule"
                    )
                else:
                    transition(
                        db,
                        lesson,
                        "failed",
                        "controller was not running at lesson time; agents that "
                        "recorded it from their cached schedule will upload it",
                    )
                if self.media is not None:
                    self.media.close(db, lesson.id)  # placed, but over before it prepared
                return None
            if not self._media_ready(db, lesson):
                return None  # its placement task wakes the orchestrator when decided
            transition(db, lesson, "preparing", "agents join and media starts")
            # Added while an emergency switch holds its school: online only, like the rest.
            apply_to_lesson(db, lesson, self.publisher())
            self.runs[lesson.id] = LessonRun(lesson.id, self.new_relay(lesson.id))
            self._check_ready(db, lesson)
        run = self.runs.get(lesson.id)
        if run is None:
            # Controller restarted mid-lesson: pick the lesson up again.
            run = self.runs[lesson.id] = LessonRun(lesson.id, self.new_relay(lesson.id))
            run.ended_at = time.monotonic() if lesson.state in ("ending", "recorded") else None
        # Restarted mid-lesson, its placement (the stored room, adopted) is decided before
        # its agents are joined again.
        if lesson.state in ("preparing", "live") and now < end and self._media_ready(db, lesson):
            if self.media is not None and self.media.retry_local(db, lesson):
                # Live media is back (an instance has room again): the joined agents,
                # recording all along, are told the room.
                for cid in sorted(run.joined):
                    join = self._join_message(db, lesson, cid)
                    if join is not None:
                        self._command(lesson.id, cid, join)
            self._rejoin_on_change(db, lesson, run)
            self._join_missing(db, lesson, run)
        if lesson.state == "preparing" and now >= start:
            transition(db, lesson, "live", "recording starts")
        plays = delivery.playback_of(db, lesson.id) is not None  # nothing is recorded
        if lesson.state == "live":
            for cid in run.joined - run.recording:
                run.recording.add(cid)
                if not plays:
                    self._command(lesson.id, cid, StartRecording(lesson_id=lesson.id))
            if now >= end:
                transition(db, lesson, "ending", "recording stops, agents leave")
                run.ended_at = time.monotonic()
                for cid in sorted(run.joined) if not plays else ():
                    self._command(lesson.id, cid, StopRecording(lesson_id=lesson.id))
                self._command(
                    lesson.id,
                    lesson.lead_classroom_id,
                    LeaveLesson(lesson_id=lesson.id, reason="lesson ended"),
                )
        if lesson.state == "ending":
            assert run.ended_at is not None
            waited = time.monotonic() - run.ended_at
            if not run.receivers_left and waited >= self.leave_grace_s:
                run.receivers_left = True
                for cid in sorted(run.joined - {lesson.lead_classroom_id}):
                    self._command(
                        lesson.id, cid, LeaveLesson(lesson_id=lesson.id, reason="lesson ended")
                    )
            reported = set(lesson.reports or {})
            if run.receivers_left and (run.joined <= reported or waited > REPORT_TIMEOUT_S):
                missing = sorted(run.joined - reported)
                transition(
                    db,
                    lesson,
                    "recorded",
                    "all agents reported"
                    if not missing
                    else f"no report from {', '.join(missing)}",
                )
                log_event(db, lesson.id, f"relay: {run.relay.stats()}")
                closes.append(run.relay)
                if self.media is not None:
                    self.media.close(db, lesson.id)
        if lesson.state == "recorded":
            self._check_uploaded(db, lesson, run)
        return self._due_in(lesson, run)

    def _check_uploaded(self, db: Session, lesson: Lesson, run: LessonRun) -> None:
        playback = delivery.playback_of(db, lesson.id)
        if playback is not None:
            # A played lesson records nothing: its report is all there is to wait for.
            share = delivery.share_played(playback)
            transition(
                db,
                lesson,
                "uploaded",
                "nothing to upload: it played "
                + ("nothing reported" if share is None else f"{share:.0%} of the item")
                + (f" ({playback.error})" if playback.error else ""),
            )
            self.runs.pop(lesson.id, None)
            return
        stored = set(
            db.scalars(select(Recording.classroom_id).where(Recording.lesson_id == lesson.id)).all()
        )
        expected = run.joined or set(lesson.classroom_ids)
        if expected <= stored:
            transition(
                db, lesson, "uploaded", f"recordings of {', '.join(sorted(stored))} in storage"
            )
            self.runs.pop(lesson.id, None)

    def on_manifest_stored(self, lesson_id: str) -> None:
        """Storage stitched a classroom's recording.

        A lesson the controller missed (it was down at lesson time) was marked failed;
        agents record from their cached schedule regardless, so their upload revives it.
        Called on the worker thread that stored it; wakes the orchestrator, since a
        recorded lesson waits for exactly this.
        """
        with self._sessions() as db:
            lesson = db.get(Lesson, lesson_id)
            if lesson is not None and lesson.state == "failed":
                transition(db, lesson, "recorded", "agents recorded it from their cached schedule")
        self.wake()

    def _check_ready(self, db: Session, lesson: Lesson) -> None:
        """Each classroom's readiness as its agent reports it; not ready raises an alert
        in the lesson's events while there is still time to act."""
        rooms = {
            c.id: c
            for c in db.scalars(
                select(Classroom).where(Classroom.id.in_(lesson.classroom_ids))
            ).all()
        }
        problems = []
        for cid in lesson.classroom_ids:
            if not self._presence.is_online(cid):
                if cid in rooms:
                    raise_offline(
                        db,
                        cid,
                        f"agent offline as lesson {lesson.id} prepares; it records from its "
                        "cached schedule only if it starts in time: check its power and network",
                        utcnow(),
                    )
                problems.append(
                    f"{cid}: agent offline (it records from its cached schedule "
                    "if it starts in time; check its network and power)"
                )
                continue
            health = (rooms[cid].health or {}) if cid in rooms else {}
            readiness = health.get("readiness")
            if isinstance(readiness, dict):
                problems += [f"{cid}: {reason}" for reason in readiness.values()]
        if problems:
            log_event(db, lesson.id, "ALERT not ready: " + "; ".join(problems))
            log.warning("lesson %s not ready: %s", lesson.id, "; ".join(problems))
        else:
            log_event(db, lesson.id, "ready: every classroom reports ready")

    def _rejoin_on_change(self, db: Session, lesson: Lesson, run: LessonRun) -> None:
        """A scheduler extended, ended early, switched the lesson to broadcast only or
        changed its live push targets: tell the joined agents the new terms."""
        pushes = tuple((t.name, t.url) for t in push_targets(db, lesson.id))
        terms = (as_utc(lesson.end_at).timestamp(), lesson.one_way, pushes)
        if run.terms is None:
            run.terms = terms
            return
        if terms == run.terms:
            return
        only_pushes = terms[:2] == run.terms[:2]  # the receivers' terms are the same
        run.terms = terms
        for cid in sorted(run.joined):
            if only_pushes and cid != lesson.lead_classroom_id:
                continue
            join = self._join_message(db, lesson, cid)
            if join is not None:
                self._command(lesson.id, cid, join)

    def floor_changed(self, state: FloorState) -> None:
        """Send the lesson's new floor to every classroom that has joined it.

        A request each agent answers with ``CommandAck`` (as joins are); an agent that
        misses it gets the floor in its next join. Agents apply only a higher ``seq``.
        """
        run = self.runs.get(state.lesson_id)
        if run is None and not self.running and self.elsewhere is not None:
            self.elsewhere.floor_changed(state)  # the leader knows who has joined
            return
        if run is None:
            log.info("floor of lesson %s changed; no agent has joined it here", state.lesson_id)
            return
        for cid in sorted(run.joined):
            self._command(state.lesson_id, cid, state)

    def _join_missing(self, db: Session, lesson: Lesson, run: LessonRun) -> None:
        missing = [
            cid
            for cid in lesson.classroom_ids
            if cid not in run.joined and cid not in run.joining and self._presence.is_online(cid)
        ]
        if missing and self.media is not None and self.media.demote_if_old(db, lesson):
            # An agent that ignores a placement is joining: the whole lesson leaves Janus,
            # so the agents already in the room are told to offer to the built-in relay.
            missing = list(lesson.classroom_ids)
        for cid in missing:
            if not self._presence.is_online(cid):
                continue
            join = self._join_message(db, lesson, cid)
            if join is None:
                continue
            run.joining.add(cid)
            self._command(lesson.id, cid, join)

    def schedule_for(self, db: Session, classroom_id: str) -> list[JoinLesson]:
        """The classroom's lessons from now to the schedule horizon, as join commands."""
        now = utcnow()
        involved = select(LessonReceiver.lesson_id).where(
            LessonReceiver.classroom_id == classroom_id
        )
        lessons = db.scalars(
            select(Lesson)
            .where(
                Lesson.state.in_(("scheduled", "preparing", "live")),
                Lesson.end_at > now,
                Lesson.start_at < now + timedelta(seconds=SCHEDULE_HORIZON_S),
                (Lesson.lead_classroom_id == classroom_id) | Lesson.id.in_(involved),
            )
            .order_by(Lesson.start_at)
        ).all()
        out = []
        for lesson in lessons:
            join = self._join_message(db, lesson, classroom_id)
            if join is not None:
                # The floor changes by the minute in a lesson; it travels in the join and
                # in FloorState commands, not in the cached schedule (no push per change);
                # so does the media placement, which lasts only as long as its room.
                out.append(join.model_copy(update={"floor": None, "media": None}))
        return out

    async def push_schedules(self) -> None:
        """Send its upcoming lessons to each online agent whose lessons changed (every
        online agent at a sweep); an agent is sent only a schedule that differs."""
        if time.monotonic() >= self._next_sweep or EVERY in self._dirty:
            self._next_sweep = time.monotonic() + SCHEDULE_SWEEP_S
            online = list(self._presence.online)
        else:
            online = [cid for cid in self._presence.online if cid in self._dirty]
        self._dirty.clear()  # an agent offline now is marked again as it registers
        if not online:
            return

        def work() -> dict[str, list[JoinLesson]]:
            # The queries run in a worker thread: with hundreds of agents online they must
            # not hold the event loop that carries the agents' links.
            with self._sessions() as db:
                return {cid: self.schedule_for(db, cid) for cid in online}

        for cid, lessons in (await asyncio.to_thread(work)).items():
            digest = hashlib.sha256("".join(j.model_dump_json() for j in lessons).encode())
            if self._pushed.get(cid) == digest.hexdigest():
                continue
            try:
                await self._hub.send(
                    cid, ScheduleUpdate(lessons=lessons, horizon_s=SCHEDULE_HORIZON_S)
                )
            except ConnectionError as err:
                log.info("schedule for %s not sent yet: %s", cid, err)
                self._dirty.add(cid)  # at the next pass
                continue
            self._pushed[cid] = digest.hexdigest()

    def agent_registered(self, classroom_id: str, here: bool = True) -> None:
        """An agent (re)registered (with this controller, or ``here=False`` with another):
        it must (re)join any lesson under way."""
        if here and self.elsewhere is not None:
            self.elsewhere.agent_registered(classroom_id)
        self._pushed.pop(classroom_id, None)
        for run in list(self.runs.values()):
            run.joined.discard(classroom_id)
            run.joining.discard(classroom_id)
            run.recording.discard(classroom_id)
        self._mark_dirty((classroom_id,))

    def _join_message(self, db: Session, lesson: Lesson, cid: str) -> JoinLesson | None:
        playback = delivery.playback_of(db, lesson.id)
        if playback is not None:
            return self._playback_join(db, lesson, playback)
        return self._live_join(db, lesson, cid)

    def _playback_join(
        self, db: Session, lesson: Lesson, playback: LessonPlayback
    ) -> JoinLesson | None:
        """A delivery lesson on demand: the room plays a library item, publishing nothing."""
        parts = delivery.join_parts(db, playback)
        if parts is None:
            log_event(db, lesson.id, "ALERT the library item it plays is no longer stored")
            return None
        source, subscribe, rooms = parts
        return JoinLesson(
            lesson_id=lesson.id,
            role="receiver",
            publish=[],
            subscribe=subscribe,
            start_at=as_utc(lesson.start_at).timestamp(),
            end_at=as_utc(lesson.end_at).timestamp(),
            rooms=rooms,
            playback=source,
        )

    def _live_join(self, db: Session, lesson: Lesson, cid: str) -> JoinLesson | None:
        rooms = {
            c.id: c
            for c in db.scalars(
                select(Classroom).where(Classroom.id.in_(lesson.classroom_ids))
            ).all()
        }
        lead = lesson.lead_classroom_id
        receivers = [c for c in lesson.classroom_ids if c != lead]
        # A research session is multi-party: every site sends its teacher camera, panel
        # and microphone, and receives every other site.
        everyone_leads = lesson.kind == "research" and not lesson.one_way

        def published(room_id: str) -> list[dict[str, object]]:
            if room_id != lead and lesson.one_way:
                return []  # broadcast only: receivers watch, nothing goes back
            room = rooms.get(room_id)
            roles = LEAD_ROLES if room_id == lead or everyone_leads else RECEIVER_ROLES
            inventory = room.inventory if room else []
            return [d for d in inventory if d.get("role") in roles]

        mine = published(cid)
        if not mine and (cid == lead or not lesson.one_way):
            log_event(db, lesson.id, f"{cid}: no device in its profile can serve its role")
            return None
        if everyone_leads:
            sources = [c for c in lesson.classroom_ids if c != cid]
        else:
            sources = [lead] if cid != lead else receivers
        subscribe = [
            Subscription(
                source_classroom=src,
                track=str(d["name"]),
                kind="audio" if d.get("kind") == "microphone" else "video",
                width=int(str(d.get("width", 0))),
                height=int(str(d.get("height", 0))),
                fps=int(str(d.get("fps", 0))),
                role=str(d.get("role", "")),
            )
            for src in sources
            for d in published(src)
        ]
        return JoinLesson(
            lesson_id=lesson.id,
            role="lead" if cid == lead else "receiver",
            publish=[str(d["name"]) for d in mine],
            subscribe=subscribe,
            start_at=as_utc(lesson.start_at).timestamp(),
            end_at=as_utc(lesson.end_at).timestamp(),
            rung=lesson.rung,
            media=self.media.placement(lesson.id) if self.media is not None else None,
            rooms=room_labels(db, lesson.classroom_ids),
            floor=floor_state(db, lesson.id) if lesson.state in ("preparing", "live") else None,
            # The stream keys go to the lead only: it alone pushes the programme.
            push_targets=push_targets(db, lesson.id) if cid == lead else [],
        )

    def _media_ready(self, db: Session, lesson: Lesson) -> bool:
        """Whether a live lesson's media placement is decided (a worker thread); the first
        call starts placing it without waiting. A played lesson has no live media."""
        if self.media is None or delivery.playback_of(db, lesson.id) is not None:
            return True
        return self.media.ready(db, lesson)

    async def _media_moved(self, instance: str, replaced: Replaced) -> None:
        """A Janus instance went down and its lessons were placed anew: each lesson's
        joined agents are sent a join with the new placement (the built-in relay's too)."""
        assert self.media is not None
        for lesson_id, outcome in replaced.items():
            detail = self.media.moved(lesson_id, instance, outcome)
            run = self.runs.get(lesson_id)
            joined = sorted(run.joined | run.joining) if run is not None else []
            log.warning("lesson %s: %s", lesson_id, detail)
            joins = await asyncio.to_thread(self._rejoins, lesson_id, detail, joined)
            for cid, join in joins.items():
                self._command(lesson_id, cid, join)

    def _rejoins(self, lesson_id: str, detail: str, joined: list[str]) -> dict[str, JoinLesson]:
        """Log a media plane event and build the joins that carry its new placement."""
        with self._sessions() as db:
            log_event(db, lesson_id, detail)
            if self.media is not None:
                self.media.store(db, lesson_id)  # a successor adopts the new room
            lesson = db.get(Lesson, lesson_id)
            if lesson is None or lesson.state not in ("preparing", "live"):
                return {}
            joins = {cid: self._join_message(db, lesson, cid) for cid in joined}
            return {cid: j for cid, j in joins.items() if j is not None}

    def _command(self, lesson_id: str, classroom_id: str, body: Body) -> None:
        """Send a command and log its answer; from the loop or the pass's thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the pass's worker thread: hand it to the loop, in order
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                self._loop.call_soon_threadsafe(self._command, lesson_id, classroom_id, body)
            return
        task = asyncio.create_task(self._send_command(lesson_id, classroom_id, body))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_command(self, lesson_id: str, classroom_id: str, body: Body) -> None:
        run = self.runs.get(lesson_id)
        try:
            reply = await self._hub.request(classroom_id, body, COMMAND_TIMEOUT_S)
            ack = reply.expect(CommandAck)
        except (ConnectionError, TimeoutError, ValueError) as err:
            ok, error = False, f"{type(err).__name__}: {err}"
        else:
            ok, error = ack.ok, ack.error
        local = self.media.no_live_media(lesson_id) if self.media is not None else None
        if not ok and local is not None and isinstance(body, JoinLesson) and NO_LIVE_MEDIA in error:
            # A lesson with no live media: the agent joined it (its sources and recorder
            # are up), only its offer was refused; it records as told.
            ok, error = True, ""
            body_note = " (no live media: it records in the classroom)"
        else:
            body_note = ""
        if run is not None and isinstance(body, JoinLesson):
            run.joining.discard(classroom_id)
            if ok:
                run.joined.add(classroom_id)
        if run is not None and isinstance(body, StartRecording) and not ok:
            run.recording.discard(classroom_id)
        if ok:
            self._wake.set()  # a joined room may now be told to record
        else:  # tried again by a pass a second from now, not in a tight loop
            asyncio.get_running_loop().call_later(RETRY_S, self._wake.set)
        detail = f"{classroom_id}: {body.TYPE} " + ("ok" + body_note if ok else f"failed: {error}")
        (log.info if ok else log.warning)("lesson %s: %s", lesson_id, detail)

        def work() -> None:
            with self._sessions() as db:
                log_event(db, lesson_id, detail)

        await asyncio.to_thread(work)
