"""The edge agent daemon: control link, devices, lesson sessions, recording and upload."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
import time

from edge_agent import __version__
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from edge_agent.media.rates import RateMeter
from edge_agent.media.source_runner import SourceRunner
from edge_agent.profile import LoadedProfile
from edge_agent.recording.lesson_recorder import LessonRecorder
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.session import LessonSession
from edge_agent.sources import build_runner
from edge_agent.systemd_notify import notify
from edge_agent.telemetry import snapshot
from edge_agent.uploader import Uploader
from protocols.envelope import Envelope
from protocols.media import aiortc_seam
from protocols.messages import (
    Body,
    CommandAck,
    DeviceInfo,
    DeviceState,
    Heartbeat,
    JoinLesson,
    LeaveLesson,
    LessonReport,
    Register,
    ScheduleUpdate,
    StartRecording,
    StopRecording,
    TrackStats,
)

log = logging.getLogger(__name__)

SCHEDULE_TICK_S = 0.2
ABANDONED_LESSON_S = 60.0


class AgentDaemon:
    """Everything one classroom PC runs."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        identity: Identity,
        profile: LoadedProfile,
        media_addresses: list[str] | None = None,
        segment_seconds: float = 10.0,
    ) -> None:
        self.state_dir = state_dir
        self.identity = identity
        self.profile = profile
        self._media_addresses = media_addresses
        self._segment_seconds = segment_seconds
        self.link = ControlLink(identity, self._register, self._heartbeat, self._on_command)
        self.uploader = Uploader(state_dir / "recordings", self._upload_credentials)
        self.sources: dict[str, SourceRunner] = {}
        self.session: LessonSession | None = None
        self._stopping = asyncio.Event()
        self.schedule = ScheduleCache(state_dir)
        self._lesson_lock = asyncio.Lock()
        self._finished: set[str] = set()
        self._offline_task: asyncio.Task[None] | None = None
        self._rates = RateMeter()

    @property
    def classroom_id(self) -> str:
        """The classroom this agent runs."""
        return self.identity.classroom_id

    def _upload_credentials(self) -> tuple[str, str] | None:
        ack = self.link.register_ack
        return None if ack is None else (ack.upload_url, ack.upload_token)

    def _register(self) -> Register:
        inventory = [
            DeviceInfo(
                name=d.name,
                kind=d.kind,
                driver=d.driver,
                role=d.role,
                width=d.width,
                height=d.height,
                fps=d.fps,
                bitrate=d.bitrate,
            )
            for d in self.profile.profile.devices
        ]
        return Register(
            classroom_id=self.classroom_id,
            agent_version=__version__,
            profile_name=self.profile.profile.name,
            profile_digest=self.profile.digest,
            inventory=inventory,
            active_lesson_id=self.session.lesson_id if self.session else None,
        )

    def _heartbeat(self, seq: int) -> Heartbeat:
        health = snapshot(self.state_dir)
        devices = {d.name: DeviceState(state="idle") for d in self.profile.profile.devices}
        media: list[TrackStats] = []
        for name, runner in self.sources.items():
            devices[name] = DeviceState(state=runner.state, detail=runner.detail)  # type: ignore[arg-type]
            frames, nbytes = runner.bus.frames, runner.bus.bytes
            fps, bps = self._rates.rates(f"send/{name}", frames, nbytes)
            media.append(
                TrackStats(
                    track=name,
                    direction="send",
                    frames=frames,
                    bytes=nbytes,
                    fps=round(fps, 1),
                    bitrate_bps=round(bps),
                )
            )
        if self.session is not None:
            for key, (frames, nbytes) in self.session.received_counters().items():
                fps, bps = self._rates.rates(f"recv/{key}", frames, nbytes)
                media.append(
                    TrackStats(
                        track=key,
                        direction="recv",
                        frames=frames,
                        bytes=nbytes,
                        fps=round(fps, 1),
                        bitrate_bps=round(bps),
                    )
                )
        notify("WATCHDOG=1")
        return Heartbeat(
            seq=seq,
            devices=devices,
            media=media,
            lesson_id=self.session.lesson_id if self.session else None,
            **health,  # type: ignore[arg-type]
        )

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Start the link and the uploader."""
        if self._media_addresses:
            aiortc_seam.pin_host_addresses(self._media_addresses)
        self.schedule.load()
        await self.link.start()
        await self.uploader.start()
        self._offline_task = asyncio.create_task(self._keep_schedule(), name="schedule")
        notify("READY=1")
        log.info("agent %s started with profile %s", self.classroom_id, self.profile.profile.name)

    async def stop(self) -> None:
        """Leave any lesson (keeping its recording), stop devices and the link."""
        notify("STOPPING=1")
        if self._offline_task is not None:
            self._offline_task.cancel()
            await asyncio.gather(self._offline_task, return_exceptions=True)
        if self.session is not None:
            await self._finish_recording(self.session.lesson_id)
            await self._leave(self.session.lesson_id)
        self._stop_sources()
        await self.uploader.stop()
        await self.link.stop()

    async def _on_command(self, env: Envelope) -> Body | None:
        body = env.body
        try:
            if isinstance(body, ScheduleUpdate):
                self.schedule.store(body)
                return None
            if isinstance(body, JoinLesson):
                async with self._lesson_lock:
                    await self._join(body)
            elif isinstance(body, StartRecording):
                self._start_recording(body.lesson_id)
            elif isinstance(body, StopRecording):
                async with self._lesson_lock:
                    await self._finish_recording(body.lesson_id)
            elif isinstance(body, LeaveLesson):
                async with self._lesson_lock:
                    await self._leave(body.lesson_id)
            else:
                return CommandAck(
                    command=body.TYPE, ok=False, error=f"agent does not handle {body.TYPE!r}"
                )
        except Exception as err:
            log.exception("command %s failed", body.TYPE)
            return CommandAck(command=body.TYPE, ok=False, error=f"{type(err).__name__}: {err}")
        return CommandAck(command=body.TYPE, ok=True)

    async def _keep_schedule(self) -> None:
        """Start and finish cached lessons by the agent's own clock.

        A lesson begins recording at its start time even if the controller is late or
        unreachable; the controller's join then only adds the relay. A lesson the agent
        began on its own ends at its end time if no controller is there to end it.
        """
        while True:
            try:
                async with self._lesson_lock:
                    await self._schedule_step(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("offline schedule step failed; carrying on")
            await asyncio.sleep(SCHEDULE_TICK_S)

    async def _schedule_step(self, now: float) -> None:
        session = self.session
        if session is None:
            lesson = self.schedule.current(now)
            if lesson is None or lesson.lesson_id in self._finished:
                return
            log.warning(
                "lesson %s is due and the controller has not started it; recording "
                "from the cached schedule",
                lesson.lesson_id,
            )
            self._begin(lesson)
            self._start_recording(lesson.lesson_id)
            return
        join = session.join
        if join.start_at <= now < join.end_at and not session.recorder.recording:
            log.warning(
                "lesson %s has started without a start command; recording", session.lesson_id
            )
            self._start_recording(session.lesson_id)
        overdue = now - join.end_at
        # Offline, the lesson ends on the agent's clock; online, the controller ends it,
        # unless it has plainly forgotten.
        if overdue >= 0 and (not self.link.online or overdue >= ABANDONED_LESSON_S):
            log.warning(
                "lesson %s is over and no controller ended it; finishing the recording",
                session.lesson_id,
            )
            await self._leave(session.lesson_id)

    def _begin(self, join: JoinLesson) -> LessonSession:
        """Sources, recorder and session for a lesson (media to the relay comes later)."""
        self._ensure_sources(join.publish)
        recorder = LessonRecorder(
            self.state_dir / "recordings" / join.lesson_id,
            join.lesson_id,
            self.classroom_id,
            self._segment_seconds,
            epoch=join.start_at,
        )
        session = LessonSession(self.classroom_id, join, self.sources, recorder, self.link.request)
        self.session = session
        return session

    def _ensure_sources(self, names: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for name in names:
            if name not in self.sources:
                device = self.profile.profile.device(name)
                runner = build_runner(device, self.profile.profile, loop)
                runner.start()
                self.sources[name] = runner

    def _stop_sources(self) -> None:
        for runner in self.sources.values():
            runner.stop()
        self.sources.clear()

    async def _join(self, join: JoinLesson) -> None:
        current = self.session
        if current is not None and current.lesson_id != join.lesson_id:
            log.warning(
                "joining %s while in %s: leaving the old lesson first",
                join.lesson_id,
                current.lesson_id,
            )
            await self._finish_recording(current.lesson_id)
            await self._leave(current.lesson_id)
            current = None
        for name in join.publish:
            try:
                self.profile.profile.device(name)
            except KeyError:
                raise ValueError(
                    f"lesson asks this classroom to publish {name!r}, which its "
                    f"profile {self.profile.profile.name!r} does not have"
                ) from None
        if current is None:
            current = self._begin(join)
        # A repeated join (controller restarted, relay lost) renegotiates the media while
        # sources and recording carry on.
        await current.connect()
        if join.start_at <= time.time() < join.end_at and not current.recorder.recording:
            self._start_recording(join.lesson_id)

    def _start_recording(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        if session.recorder.recording:
            session.request_keyframes()
            return
        session.start_counting()
        session.recorder.start()
        log.info("recording lesson %s", lesson_id)

    async def _finish_recording(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        if not session.recorder.recording:
            return
        session.freeze_sent()
        manifest = await asyncio.to_thread(session.recorder.stop)
        log.info("lesson %s recorded: %s", lesson_id, manifest)
        self.uploader.kick()

    async def _leave(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        await self._finish_recording(lesson_id)
        report = LessonReport(lesson_id=lesson_id, tracks=session.report())
        await session.close()
        self.session = None
        self._finished.add(lesson_id)
        self._stop_sources()
        await self.link.send(report)

    def _session_for(self, lesson_id: str) -> LessonSession:
        if self.session is None or self.session.lesson_id != lesson_id:
            current = self.session.lesson_id if self.session else "none"
            raise ValueError(f"not in lesson {lesson_id!r} (current lesson: {current})")
        return self.session
