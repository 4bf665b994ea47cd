"""A lesson's life on the agent: join, begin, retune, hand over, record, leave.

The controller's commands and the agent's own clock both move lessons along here: a
lesson starts recording at its start time even when the controller is late, and a lesson
the agent began alone ends at its end time. Everything else a lesson needs from the
agent (the link, the devices, the disk, the uploads) comes in as
:class:`~edge_agent.lesson_hooks.LessonHooks`.

Each :class:`LessonSession` is built in one place, :meth:`LessonLifecycle._new_session`,
so a session made for new terms mid-lesson is configured like the first one.
"""

from __future__ import annotations

import asyncio
import logging

from edge_agent import manual_record
from edge_agent.director.programme import Programme
from edge_agent.disk import lesson_need
from edge_agent.lesson_hooks import LessonHooks, SessionHook, no_listener
from edge_agent.manual_record import Answer, Request
from edge_agent.media.priority import collect_between_lessons
from edge_agent.recording.lesson_recorder import LessonRecorder
from edge_agent.session import Decoded, LessonSession
from protocols.lesson_ids import manual_start
from protocols.messages import JoinLesson, LessonReport

log = logging.getLogger(__name__)

SCHEDULE_TICK_S = 0.2
ABANDONED_LESSON_S = 60.0
DISK_CHECK_S = 5.0
# A lesson that starts within this many seconds after the current one ends is handed
# over to without stopping the sources.
HANDOVER_S = 60.0
# Recording starts this much before the lesson, so the first keyframe is on disk by its
# first second (the catalogue counts coverage from the scheduled start).
PREROLL_S = 0.3
MANUAL_ROOM_S = 2700  # disk room a manual recording asks for, like a scheduled lesson
# After a lesson ends, the full garbage collection waits this long (the frames that still
# hold the session have returned by then) and runs only if no lesson is live.
COLLECT_AFTER_S = 2.0


def _tell(hook: SessionHook, session: LessonSession) -> None:
    """Run a session hook; a failing listener is logged and the lesson carries on."""
    try:
        hook(session)
    except Exception:
        log.exception("lesson %s: a session hook failed; carrying on", session.lesson_id)


class LessonLifecycle:
    """The current lesson (课堂) of this classroom and the one queued after it.

    Room outputs hook in at construction: ``on_decoded`` receives every decoded remote
    frame of the current session; ``on_session_started`` hears of each session once it is
    current, ``on_session_ended`` once it is closed. A retune with new subscriptions ends
    the old session and starts a new one; a handover starts the next lesson's session
    before it ends the previous one.
    """

    def __init__(
        self,
        hooks: LessonHooks,
        *,
        on_decoded: Decoded | None = None,
        on_session_started: SessionHook = no_listener,
        on_session_ended: SessionHook = no_listener,
        collect_after_s: float = COLLECT_AFTER_S,
    ) -> None:
        self._hooks = hooks
        self._collect_after_s = collect_after_s
        self._collect: asyncio.TimerHandle | None = None
        self._on_decoded = on_decoded
        self._on_session_started = on_session_started
        self._on_session_ended = on_session_ended
        self._session: LessonSession | None = None
        # The next lesson the controller joined this classroom to while another runs.
        self._next: JoinLesson | None = None
        self._finished: set[str] = set()
        self._lock = asyncio.Lock()  # one command or schedule step at a time
        self._last_disk_check = 0.0

    @property
    def session(self) -> LessonSession | None:
        """The session of the lesson under way, if any."""
        return self._session

    # Commands from the controller (each under the lock) ---------------------------------

    async def join(self, join: JoinLesson) -> None:
        """Join (or rejoin with new terms); the media to the relay is renegotiated."""
        async with self._lock:
            await self._join(join)

    async def start_recording(self, lesson_id: str) -> None:
        """The lesson starts: record it (handing over if it is the queued one)."""
        async with self._lock:
            if self._next is not None and self._next.lesson_id == lesson_id:
                await self._handover(self._next)
            elif lesson_id not in self._finished:
                self._start_recording(lesson_id)

    async def stop_recording(self, lesson_id: str) -> None:
        """Stop recording the lesson (its media carries on until it is left)."""
        async with self._lock:
            if lesson_id not in self._finished:
                await self._finish_recording(lesson_id)

    async def leave(self, lesson_id: str) -> None:
        """Finish, report and close the lesson."""
        async with self._lock:
            if lesson_id not in self._finished:
                await self._leave(lesson_id)

    async def close(self) -> None:
        """Leave any lesson, keeping its recording (the agent stops).

        Not under the lock: a join waiting up to 15 s for the relay must not hold up
        the shutdown systemd is timing.
        """
        session = self._session
        if session is not None:
            await self._finish_recording(session.lesson_id)
            await self._leave(session.lesson_id)
        if self._collect is not None:
            self._collect.cancel()
            self._collect = None

    # Recording by hand (the technician's ``classroom-agent record``) --------------------

    async def record_by_hand(self, req: Request) -> Answer:
        """Record every device as a lesson of its own, unless a lesson is under way."""
        async with self._lock:
            current = self._session.lesson_id if self._session else None
            refusal = manual_record.refuse_start(req, current)
            if refusal is not None:
                return refusal
            now = self._hooks.now()
            join = manual_record.manual_join(now, [d.name for d in self._hooks.profile.devices])
            # The disk check carries on while it records.
            room = join.model_copy(update={"end_at": now + MANUAL_ROOM_S})
            self._hooks.check_disk(lesson_need(self._hooks.profile, room))
            self._begin(join, check_disk=False)
            self._start_recording(join.lesson_id)
            log.info("recording by hand as %s (technician's request)", join.lesson_id)
            return manual_record.started(req, join)

    async def stop_by_hand(self, req: Request) -> Answer:
        """End the recording made by hand."""
        async with self._lock:
            current = self._session
            refusal = manual_record.refuse_stop(req, current.lesson_id if current else None)
            if refusal is not None:
                return refusal
            assert current is not None  # refuse_stop answered otherwise
            await self._end_session(current, keep_sources=None)
            return manual_record.stopped(req, current.recorder.directory)

    # The agent's clock ------------------------------------------------------------------

    async def step(self, now: float) -> None:
        """Start, hand over and finish lessons by the controller's clock.

        A lesson begins recording at its start time even if the controller is late or
        unreachable; the controller's join then only adds the relay. A lesson the agent
        began on its own ends at its end time if no controller is there to end it.
        """
        async with self._lock:
            await self._step(now)

    def until_next_event(self, now: float) -> float:
        """Sleep to the next start or end (so lessons start on time), at most one tick."""
        moments = [self._next.start_at] if self._next else []
        if self._session is not None:
            join = self._session.join
            moments += [join.start_at - PREROLL_S, join.start_at, join.end_at]
        moments += [x.start_at for x in self._hooks.schedule.lessons if x.start_at > now]
        ahead = [m - now for m in moments if m > now]
        return max(0.001, min([SCHEDULE_TICK_S, *ahead]))

    def _due(self, now: float) -> JoinLesson | None:
        """The lesson that should be recording now, if it is not the current one."""
        for candidate in (self._next, self._hooks.schedule.current(now)):
            if (
                candidate is not None
                and candidate.playback is None  # played by edge_agent.delivery, not recorded
                and candidate.start_at <= now < candidate.end_at
                and candidate.lesson_id not in self._finished
                and (self._session is None or candidate.lesson_id != self._session.lesson_id)
            ):
                return candidate
        return None

    async def _step(self, now: float) -> None:
        session = self._session
        due = self._due(now)
        # A recording made by hand gives way to the timetable.
        yields = (
            session is None
            or manual_start(session.lesson_id) is not None
            or now >= session.join.end_at - 0.05
        )
        if due is not None and yields:
            if session is None:
                log.warning(
                    "lesson %s is due and the controller has not started it; recording "
                    "from the cached schedule",
                    due.lesson_id,
                )
            await self._handover(due)
            return
        if session is None:
            self._check_disk_soon(now)
            return
        join = session.join
        if join.start_at - PREROLL_S <= now < join.end_at and not session.recorder.recording:
            log.info("lesson %s starts now (agent clock, corrected)", session.lesson_id)
            self._start_recording(session.lesson_id)
        if session.recorder.recording and now - self._last_disk_check >= DISK_CHECK_S:
            self._last_disk_check = now
            self._hooks.check_disk(0)
        overdue = now - join.end_at
        # Offline, the lesson ends on the agent's clock; online, the controller ends it,
        # unless it has plainly forgotten.
        if overdue >= 0 and (not self._hooks.online() or overdue >= ABANDONED_LESSON_S):
            log.warning(
                "lesson %s is over and no controller ended it; finishing the recording",
                session.lesson_id,
            )
            await self._leave(session.lesson_id)

    def _check_disk_soon(self, now: float) -> None:
        """Before a lesson (within 10 min), make room for it or alert while there is time."""
        upcoming = [x for x in self._hooks.schedule.lessons if 0 < x.start_at - now <= 600]
        if upcoming and now - self._last_disk_check >= 60:
            self._last_disk_check = now
            self._hooks.check_disk(lesson_need(self._hooks.profile, upcoming[0]))

    # Sessions ---------------------------------------------------------------------------

    async def _join(self, join: JoinLesson) -> None:
        current = self._session
        if join.lesson_id in self._finished:
            raise ValueError(f"lesson {join.lesson_id} is already finished on this agent")
        if (
            current is not None
            and current.lesson_id != join.lesson_id
            and join.start_at >= current.join.end_at - HANDOVER_S
            and self._hooks.now() < current.join.end_at
        ):
            # Back to back: take over when the current lesson ends (see _handover).
            log.info(
                "lesson %s follows %s in this classroom; handing over at its start",
                join.lesson_id,
                current.lesson_id,
            )
            self._next = join
            return
        if current is not None and current.lesson_id != join.lesson_id:
            log.warning(
                "joining %s while in %s: leaving the old lesson first",
                join.lesson_id,
                current.lesson_id,
            )
            await self._finish_recording(current.lesson_id)
            await self._leave(current.lesson_id)
            current = None
        profile = self._hooks.profile
        for name in join.publish:
            try:
                profile.device(name)
            except KeyError:
                raise ValueError(
                    f"lesson asks this classroom to publish {name!r}, which its "
                    f"profile {profile.name!r} does not have"
                ) from None
        reconnect = True
        if current is None:
            current = self._begin(join)
        elif current.join != join:
            # New times or live push targets only: media that is up carries on as it is;
            # a new Janus placement (its instance died) moves the media to the new room.
            reconnect = not current.connected.is_set() or (
                join.publish,
                join.subscribe,
                join.media,
            ) != (current.join.publish, current.join.subscribe, current.join.media)
            current = await self._retune(current, join)
        # A repeated join (controller restarted, relay lost) renegotiates the media while
        # sources and recording carry on. The wrong network: recorded here, not streamed.
        now = self._hooks.now()
        if join.start_at <= now < join.end_at and not current.recorder.recording:
            self._start_recording(join.lesson_id)
        self._hooks.check_placement()
        if reconnect:
            await current.connect()

    def _begin(self, join: JoinLesson, check_disk: bool = True) -> LessonSession:
        """Sources, recorder and session for a lesson (media to the relay comes later)."""
        if check_disk:
            self._hooks.check_disk(lesson_need(self._hooks.profile, join))
        self._hooks.ensure_sources(join.publish)
        lesson_id = join.lesson_id
        recorder = LessonRecorder(
            self._hooks.recordings_dir / lesson_id,
            lesson_id,
            self._hooks.classroom_id,
            self._hooks.segment_seconds,
            epoch=join.start_at,
            scheduled_s=join.end_at - join.start_at,
            now=self._hooks.now,
            on_segment=lambda key, info: self._hooks.on_segment(lesson_id, key, info),
        )
        return self._adopt(self._new_session(join, recorder))

    async def _retune(self, session: LessonSession, join: JoinLesson) -> LessonSession:
        """New terms for the lesson under way (extended, ended early, broadcast only):
        the same recorder carries on; the media is rebuilt for the new publish set."""
        log.info("lesson %s: new terms from the controller", join.lesson_id)
        if join.publish == session.join.publish and join.subscribe == session.join.subscribe:
            session.join = join  # only the times (or the live push targets) changed
            self._programme_for(join)  # pushes added or removed start or stop
            return session
        recording = session.recorder.recording
        await session.close()
        self._session = None
        _tell(self._on_session_ended, session)
        self._hooks.ensure_sources(join.publish)
        fresh = self._adopt(self._new_session(join, session.recorder))
        if recording:
            fresh.start_counting()
        return fresh

    def _new_session(self, join: JoinLesson, recorder: LessonRecorder) -> LessonSession:
        """The one place a session is made, complete: programme, decoded-media callback,
        DSCP marks, and the encoders' roles and bitrates at the lesson's rung."""
        hooks = self._hooks
        programme = self._programme_for(join)
        recorded = programme is not None and hooks.profile.director.mode != "resource"
        cap = hooks.network.video_cap_bps(join.rung)
        if cap is not None:  # the rung the lesson was placed on: encoders start there
            for name in join.publish:
                source = hooks.sources.get(name)
                if source is not None and source.kind == "video":
                    source.set_bitrate(min(hooks.profile.device(name).bitrate, cap))
        return LessonSession(
            hooks.classroom_id,
            join,
            hooks.sources,
            recorder,
            hooks.request,
            programme=programme.runner if recorded and programme is not None else None,
            on_decoded=self._on_decoded,
            network=hooks.network.profile,
            devices={
                d.name: (d.role, min(d.bitrate, cap or d.bitrate)) for d in hooks.profile.devices
            },
        )

    def _adopt(self, session: LessonSession) -> LessonSession:
        """Make ``session`` the current one and tell whoever listens."""
        self._session = session
        _tell(self._on_session_started, session)
        return session

    def _programme_for(self, join: JoinLesson) -> Programme | None:
        """The lesson's programme (running, else started if the profile asks for one)."""
        publishing = {n: s for n in join.publish if (s := self._hooks.sources.get(n)) is not None}
        try:
            programme = self._hooks.programme_desk.for_lesson(
                join.lesson_id,
                publishing,
                is_live=lambda: self._session is not None,
                targets=join.push_targets,
            )
        except ValueError as err:
            log.warning("lesson %s: no programme: %s", join.lesson_id, err)
            self._hooks.alerts["director"] = str(err)
            return None
        self._hooks.alerts.pop("director", None)
        return programme

    async def _handover(self, due: JoinLesson) -> None:
        """Start recording ``due`` now, then finish the current lesson (if any).

        The next lesson's recorder starts before the old one stops, on the same
        sources, so back-to-back lessons lose nothing at the seam.
        """
        old = self._session
        if self._next is not None and self._next.lesson_id == due.lesson_id:
            self._next = None
        new = self._begin(due, check_disk=old is None)
        self._start_recording(due.lesson_id)
        if old is not None:
            await self._end_session(old, keep_sources=set(due.publish))
        if self._hooks.online():
            task = asyncio.create_task(self._connect(new), name=f"connect-{due.lesson_id}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _connect(self, session: LessonSession) -> None:
        try:
            self._hooks.check_placement()
            await session.connect()
        except Exception as err:  # noqa: BLE001 - the lesson records regardless; logged
            log.warning("lesson %s: media to the relay not up yet (%s)", session.lesson_id, err)

    def _start_recording(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        if session.recorder.recording:
            session.request_keyframes()
            return
        session.start_counting()
        session.recorder.start()
        log.info("recording lesson %s", lesson_id)

    async def _finish_recording(self, lesson_id: str) -> None:
        await self._finish_session_recording(self._session_for(lesson_id))

    async def _finish_session_recording(self, session: LessonSession) -> None:
        if not session.recorder.recording:
            return
        session.freeze_sent()
        manifest = await asyncio.to_thread(session.recorder.stop)
        log.info("lesson %s recorded: %s", session.lesson_id, manifest)
        self._hooks.on_manifest(session.lesson_id, manifest)

    async def _leave(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        nxt = self._next
        soon = nxt is not None and nxt.start_at - self._hooks.now() <= HANDOVER_S
        await self._end_session(session, keep_sources=set(nxt.publish) if nxt and soon else None)

    async def _end_session(self, session: LessonSession, keep_sources: set[str] | None) -> None:
        """Finish the recording, report and close a session (the current one or not)."""
        await self._finish_session_recording(session)
        report = LessonReport(
            lesson_id=session.lesson_id,
            tracks=session.report(),
            talk=self._hooks.talk_timeline(session.lesson_id),
        )
        await session.close()
        await self._hooks.programme_desk.stop(session.lesson_id)
        if self._session is session:
            self._session = None
        self._finished.add(session.lesson_id)
        _tell(self._on_session_ended, session)
        self._hooks.stop_sources(keep_sources)
        if self._session is None:
            self._collect_soon()
        if manual_start(session.lesson_id) is None:  # the timetable knows no manual one
            await self._hooks.send(report)

    def _collect_soon(self) -> None:
        """Free what the lesson left in reference cycles before the next one (see
        :mod:`edge_agent.media.priority`: the agent's collector rarely gets there)."""
        if self._collect is not None:
            self._collect.cancel()
        loop = asyncio.get_running_loop()
        self._collect = loop.call_later(self._collect_after_s, self._collect_if_idle)

    def _collect_if_idle(self) -> None:
        self._collect = None
        if self._session is None:  # a lesson that began meanwhile: its end collects
            collect_between_lessons()

    def _session_for(self, lesson_id: str) -> LessonSession:
        session = self._session
        if session is None or session.lesson_id != lesson_id:
            current = session.lesson_id if session else "none"
            raise ValueError(f"not in lesson {lesson_id!r} (current lesson: {current})")
        return session
