"""The edge agent daemon: control link, devices, lesson sessions, recording and upload."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal

import av
import numpy as np

from edge_agent import __version__, manual_record, remote_actions
from edge_agent.checks import check_device
from edge_agent.clock import ControllerClock
from edge_agent.director.programme import Programme, ProgrammeDesk
from edge_agent.disk import DEFAULT_RESERVE_BYTES, DiskPolicy, lesson_bytes
from edge_agent.health_report import device_states, media_stats, readiness, update_alerts
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from edge_agent.manual_record import Answer, Request, answer, take_request
from edge_agent.media.capture_runner import AudioFilter
from edge_agent.media.echo_cancel import EchoCanceller
from edge_agent.media.preview import BusDecoder
from edge_agent.media.rates import RateMeter
from edge_agent.network.interfaces import PlacementRefused
from edge_agent.network.policy import NetworkPolicy
from edge_agent.panel_output import PanelWindow
from edge_agent.profile import Device, LoadedProfile
from edge_agent.recording.lesson_recorder import LessonRecorder
from edge_agent.recording.manifest import MANIFEST_NAME
from edge_agent.recording.segments import SegmentInfo, read_segment_infos, sha256_file
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.session import LessonSession
from edge_agent.sources import MediaSource, build_runner
from edge_agent.systemd_notify import notify
from edge_agent.telemetry import snapshot
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader
from protocols.envelope import Envelope
from protocols.lesson_ids import manual_start
from protocols.media import aiortc_seam
from protocols.messages import (
    ActionResult,
    AgentAction,
    Body,
    CommandAck,
    DeviceInfo,
    Heartbeat,
    JoinLesson,
    LeaveLesson,
    LessonReport,
    Register,
    ScheduleUpdate,
    StartRecording,
    StopRecording,
    Subscription,
)
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

SCHEDULE_TICK_S = 0.2
ABANDONED_LESSON_S = 60.0
DISK_CHECK_S = 5.0
RECEIVED_VIDEO_BPS = 2_000_000  # estimate for a remote camera when sizing the disk
# A lesson that starts within this many seconds after the current one ends is handed
# over to without stopping the sources.
HANDOVER_S = 60.0
READY_LINK_WAIT_S = 15.0  # systemd hears READY=1 after this even if the controller is away
PROBE_S = 60.0  # devices not in use are probed this often, so readiness stays true
# Recording starts this much before the lesson, so the first keyframe is on disk by its
# first second (the catalogue counts coverage from the scheduled start).
PREROLL_S = 0.3


class UploadLimits:
    """Upload rate limits, bytes/s (None: unlimited): lower while a lesson is live."""

    def __init__(self, live_kbps: int = 2000, idle_kbps: int = 0) -> None:
        self.live_bps = live_kbps * 1000 / 8 if live_kbps > 0 else None
        self.idle_bps = idle_kbps * 1000 / 8 if idle_kbps > 0 else None


class AgentDaemon:
    """Everything one classroom PC runs."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        identity: Identity,
        profile: LoadedProfile,
        media_addresses: list[str] | None = None,
        segment_seconds: float = 10.0,
        upload_limits: UploadLimits | None = None,
        disk_reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        network_profile: NetworkProfile | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.network = NetworkPolicy(network_profile)
        self._seen_ack: object = None
        # Set by the console's "restart": the CLI then exits with RESTART_EXIT_CODE.
        self.restart_requested = False
        self.identity = identity
        self.profile = profile
        self._media_addresses = media_addresses
        self._segment_seconds = segment_seconds
        self.link = ControlLink(identity, self._register, self._heartbeat, self._on_command)
        self.clock = ControllerClock(state_dir)
        self.recordings_dir = state_dir / "recordings"
        self.journal = UploadJournal(state_dir / "uploads.sqlite3")
        limits = upload_limits or UploadLimits()
        self.uploader = Uploader(
            self.journal,
            identity.classroom_id,
            self._upload_credentials,
            lambda: limits.live_bps if self._live() else limits.idle_bps,
        )
        self.disk = DiskPolicy(self.recordings_dir, self.journal, disk_reserve_bytes)
        self.alerts: dict[str, str] = {}
        # Cancels what the panel's speakers play out of the room microphones.
        self.echo: EchoCanceller | None = None
        self.panel: PanelWindow | None = None
        self._corner: BusDecoder | None = None  # the local room in the panel's corner
        self._far_resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        self._last_disk_check = 0.0
        self._was_online = False
        self.sources: dict[str, MediaSource] = {}
        self.session: LessonSession | None = None
        # The next lesson the controller joined this classroom to while another runs.
        self._next: JoinLesson | None = None
        self._stopping = asyncio.Event()
        self.schedule = ScheduleCache(state_dir)
        self._lesson_lock = asyncio.Lock()
        self._finished: set[str] = set()
        self._offline_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        # Devices not in a lesson: the result of their last probe (name → (ok, detail)).
        self.probed: dict[str, tuple[bool, str]] = {}
        self._rates = RateMeter()
        # The director's programme and its live push, per lesson (movie mode, push_url).
        self.programme_desk = ProgrammeDesk(profile.profile)
        self._programmes = self.programme_desk.programmes
        self._pushes = self.programme_desk.pushes

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
        notify("WATCHDOG=1")
        self._take_network_profile()
        self.clock.update(self.link.clock.offset_s)
        online = self.link.online
        if online and not self._was_online:
            self.uploader.kick(now=True)  # the controller is back: retry at once
        self._was_online = online
        devices = device_states(self.profile.profile, self.sources, self.probed)
        update_alerts(self.alerts, devices, self.sources, self.link.clock.offset_s)
        pending = self.journal.summary().get("pending")
        if not isinstance(pending, dict):
            pending = {}
        levels = [lv for r in self.sources.values() if (lv := r.level_dbfs) is not None]
        return Heartbeat(
            seq=seq,
            devices=devices,
            media=media_stats(self.sources, self.session, self._rates),
            lesson_id=self.session.lesson_id if self.session else None,
            alerts=dict(self.alerts),
            readiness=readiness(devices, self.alerts, self.clock.measured),
            uploads_pending=int(pending.get("files", 0)),
            uploads_pending_bytes=int(pending.get("bytes", 0)),
            audio_level_dbfs=round(max(levels), 1) if levels else None,
            **snapshot(self.state_dir),  # type: ignore[arg-type]
        )

    def _take_network_profile(self) -> None:
        """Adopt the network profile of the latest registration answer."""
        ack = self.link.register_ack
        if ack is None or ack is self._seen_ack:
            return
        self._seen_ack = ack
        problem = self.network.update_from_controller(ack.network_profile, self.state_dir)
        if problem:
            log.error("%s", problem)
            self.alerts["network_profile"] = problem
        else:
            self.alerts.pop("network_profile", None)

    def _check_placement(self) -> None:
        """Raise PlacementRefused (and alert) if this PC is not where its profile says."""
        placement = self.network.check()
        if placement is None or placement.ok:
            self.alerts.pop("network_placement", None)
            return
        self.alerts["network_placement"] = placement.message
        raise PlacementRefused(placement.message)

    def _live(self) -> bool:
        return self.session is not None and self.session.recorder.recording

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
        self._enqueue_existing()
        self._offline_task = asyncio.create_task(self._keep_schedule(), name="schedule")
        await self.link.start()
        await self.uploader.start()
        self._start_panel()
        await self._probe_devices()
        self._probe_task = asyncio.create_task(self._keep_probing(), name="probe")
        try:
            await asyncio.wait_for(self.link.registered.wait(), READY_LINK_WAIT_S)
            link = "controller link up"
        except TimeoutError:
            link = "controller unreachable, recording from the cached timetable"
            log.warning("no answer from the controller yet; carrying on offline")
        failed = sorted(n for n, (ok, _) in self.probed.items() if not ok)
        devices = f"devices failing: {', '.join(failed)}" if failed else "devices ready"
        notify(f"READY=1\nSTATUS={devices}; {link}")
        log.info(
            "agent %s started with profile %s (%s; %s)",
            self.classroom_id,
            self.profile.profile.name,
            devices,
            link,
        )

    async def _probe_devices(self) -> None:
        """Open each device not in use once, all at the same time (a few seconds at most)."""
        idle = [d for d in self.profile.profile.devices if d.name not in self.sources]
        results = await asyncio.gather(*(asyncio.to_thread(check_device, d, 4.0) for d in idle))
        for device, check in zip(idle, results, strict=True):
            before = self.probed.get(device.name, (True, ""))[0]
            self.probed[device.name] = (check.ok, "" if check.ok else check.detail)
            if before != check.ok:
                (log.info if check.ok else log.warning)(
                    "device %s %s", device.name, "is back" if check.ok else f"fails: {check.detail}"
                )

    async def _keep_probing(self) -> None:
        while True:
            await asyncio.sleep(PROBE_S)
            try:
                await self._probe_devices()
            except Exception:
                log.exception("device probe failed; carrying on")

    async def stop(self) -> None:
        """Leave any lesson (keeping its recording), stop devices and the link."""
        notify("STOPPING=1")
        for task in (self._offline_task, self._probe_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.session is not None:
            await self._finish_recording(self.session.lesson_id)
            await self._leave(self.session.lesson_id)
        self._stop_sources()
        if self.panel is not None:
            self.panel.stop()
        await self.uploader.stop()
        await self.link.stop()
        self.journal.close()

    def _enqueue_existing(self) -> None:
        """Journal closed segments and manifests on disk (a crash between close and
        enqueue, or recordings from before the journal existed)."""
        if not self.recordings_dir.exists():
            return
        for lesson_dir in sorted(p for p in self.recordings_dir.iterdir() if p.is_dir()):
            for track_dir in (p for p in lesson_dir.iterdir() if p.is_dir()):
                for info in read_segment_infos(track_dir):
                    self._on_segment(lesson_dir.name, track_dir.name, info)
            manifest = lesson_dir / MANIFEST_NAME
            if manifest.exists():
                self._enqueue_manifest(lesson_dir.name, manifest)

    def _on_segment(self, lesson_id: str, key: str, info: SegmentInfo) -> None:
        if self.journal.enqueue(
            lesson_id, f"{key}/{info.path.name}", info.path, info.bytes, info.sha256
        ):
            self.uploader.kick()

    def _enqueue_manifest(self, lesson_id: str, path: pathlib.Path) -> None:
        self.journal.enqueue(lesson_id, MANIFEST_NAME, path, path.stat().st_size, sha256_file(path))
        self.uploader.kick()

    async def _on_command(self, env: Envelope) -> Body | None:
        body = env.body
        try:
            if isinstance(body, ScheduleUpdate):
                self.schedule.store(body)
                return None
            if isinstance(body, AgentAction):
                # Answered when done (a doctor run probes devices for seconds), so the
                # commands behind it — a join — are not held up.
                task = asyncio.create_task(self._action(env.id, body), name=f"action-{body.action}")
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                return None
            if isinstance(body, JoinLesson):
                async with self._lesson_lock:
                    await self._join(body)
            elif isinstance(body, StartRecording):
                async with self._lesson_lock:
                    if self._next is not None and self._next.lesson_id == body.lesson_id:
                        await self._handover(self._next)
                    elif body.lesson_id not in self._finished:
                        self._start_recording(body.lesson_id)
            elif isinstance(body, StopRecording):
                async with self._lesson_lock:
                    if body.lesson_id not in self._finished:
                        await self._finish_recording(body.lesson_id)
            elif isinstance(body, LeaveLesson):
                async with self._lesson_lock:
                    if body.lesson_id not in self._finished:
                        await self._leave(body.lesson_id)
            else:
                return CommandAck(
                    command=body.TYPE, ok=False, error=f"agent does not handle {body.TYPE!r}"
                )
        except Exception as err:
            log.exception("command %s failed", body.TYPE)
            return CommandAck(command=body.TYPE, ok=False, error=f"{type(err).__name__}: {err}")
        return CommandAck(command=body.TYPE, ok=True)

    async def _action(self, correlation_id: str, action: AgentAction) -> None:
        """Run a technician's remote action and answer the controller with its result."""
        log.info("remote action %s requested from the console", action.action)
        try:
            if action.action == "restart":
                result = ActionResult(
                    action="restart", ok=True, output="the agent restarts now (systemd starts it)"
                )
                self.restart_requested = True
                asyncio.get_running_loop().call_later(0.5, self._stopping.set)
            else:
                result = await remote_actions.run(
                    action,
                    self.profile.profile,
                    pathlib.Path(self.profile.path),
                    self.state_dir,
                )
        except Exception as err:
            log.exception("remote action %s failed", action.action)
            result = ActionResult(
                action=action.action, ok=False, output=f"{type(err).__name__}: {err}"
            )
        await self.link.send(result, correlation_id=correlation_id)

    async def _keep_schedule(self) -> None:
        """Start, hand over and finish lessons by the controller's clock.

        A lesson begins recording at its start time even if the controller is late or
        unreachable; the controller's join then only adds the relay. A lesson the agent
        began on its own ends at its end time if no controller is there to end it.
        """
        while True:
            try:
                async with self._lesson_lock:
                    await self._manual_request()
                    await self._schedule_step(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schedule step failed; carrying on")
            await asyncio.sleep(self._until_next_event(self.clock.now()))

    async def _manual_request(self) -> None:
        """Act on a ``classroom-agent record start|stop`` left in the state directory."""
        try:
            req = take_request(self.state_dir)
        except ValueError as err:
            log.warning("%s", err)
            return
        if req is None:
            return
        try:
            if req.action == "start":
                ans = self._manual_start(req)
            else:
                ans = await self._manual_stop(req)
        except Exception as err:
            log.exception("record %s failed", req.action)
            ans = Answer(req.id, False, f"record {req.action} failed: {type(err).__name__}: {err}")
        answer(self.state_dir, ans)

    def _manual_start(self, req: Request) -> Answer:
        refusal = manual_record.refuse_start(req, self.session.lesson_id if self.session else None)
        if refusal is not None:
            return refusal
        now = self.clock.now()
        join = manual_record.manual_join(now, [d.name for d in self.profile.profile.devices])
        # Room for three quarters of an hour, like a scheduled lesson; the disk check
        # carries on while it records.
        self._check_disk(self._lesson_need(join.model_copy(update={"end_at": now + 2700})))
        self._begin(join, check_disk=False)
        self._start_recording(join.lesson_id)
        log.info("recording by hand as %s (technician's request)", join.lesson_id)
        return manual_record.started(req, join)

    async def _manual_stop(self, req: Request) -> Answer:
        current = self.session
        refusal = manual_record.refuse_stop(req, current.lesson_id if current else None)
        if refusal is not None:
            return refusal
        assert current is not None  # refuse_stop answered otherwise
        await self._end_session(current, keep_sources=None)
        return manual_record.stopped(req, self.recordings_dir / current.lesson_id)

    def _until_next_event(self, now: float) -> float:
        """Sleep to the next start or end (so lessons start on time), at most one tick."""
        moments = [self._next.start_at] if self._next else []
        if self.session is not None:
            join = self.session.join
            moments += [join.start_at - PREROLL_S, join.start_at, join.end_at]
        moments += [x.start_at for x in self.schedule.lessons if x.start_at > now]
        ahead = [m - now for m in moments if m > now]
        return max(0.001, min([SCHEDULE_TICK_S, *ahead]))

    def _due(self, now: float) -> JoinLesson | None:
        """The lesson that should be recording now, if it is not the current one."""
        for candidate in (self._next, self.schedule.current(now)):
            if (
                candidate is not None
                and candidate.start_at <= now < candidate.end_at
                and candidate.lesson_id not in self._finished
                and (self.session is None or candidate.lesson_id != self.session.lesson_id)
            ):
                return candidate
        return None

    async def _schedule_step(self, now: float) -> None:
        session = self.session
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
            self._check_disk(0)
        overdue = now - join.end_at
        # Offline, the lesson ends on the agent's clock; online, the controller ends it,
        # unless it has plainly forgotten.
        if overdue >= 0 and (not self.link.online or overdue >= ABANDONED_LESSON_S):
            log.warning(
                "lesson %s is over and no controller ended it; finishing the recording",
                session.lesson_id,
            )
            await self._leave(session.lesson_id)

    def _check_disk_soon(self, now: float) -> None:
        """Before a lesson (within 10 min), make room for it or alert while there is time."""
        upcoming = [x for x in self.schedule.lessons if 0 < x.start_at - now <= 600]
        if upcoming and now - self._last_disk_check >= 60:
            self._last_disk_check = now
            self._check_disk(self._lesson_need(upcoming[0]))

    def _lesson_need(self, join: JoinLesson) -> int:
        rates = []
        for name in join.publish:
            try:
                rates.append(self.profile.profile.device(name).bitrate)
            except KeyError:
                continue
        rates += [RECEIVED_VIDEO_BPS if s.kind == "video" else 64_000 for s in join.subscribe]
        return lesson_bytes(rates, join.end_at - join.start_at)

    def _check_disk(self, need: int) -> None:
        check = self.disk.ensure(need)
        if check.ok:
            if self.alerts.pop("disk_low", None):
                log.info("disk space is sufficient again")
        else:
            if "disk_low" not in self.alerts:
                log.error("%s", check.message)
            self.alerts["disk_low"] = check.message

    async def _handover(self, due: JoinLesson) -> None:
        """Start recording ``due`` now, then finish the current lesson (if any).

        The next lesson's recorder starts before the old one stops, on the same
        sources, so back-to-back lessons lose nothing at the seam.
        """
        old = self.session
        if self._next is not None and self._next.lesson_id == due.lesson_id:
            self._next = None
        new = self._begin(due, check_disk=old is None)
        self._start_recording(due.lesson_id)
        if old is not None:
            await self._end_session(old, keep_sources=set(due.publish))
        if self.link.online:
            task = asyncio.create_task(self._connect(new), name=f"connect-{due.lesson_id}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _connect(self, session: LessonSession) -> None:
        try:
            self._check_placement()
            await session.connect()
        except Exception as err:  # noqa: BLE001 - the lesson records regardless; logged
            log.warning("lesson %s: media to the relay not up yet (%s)", session.lesson_id, err)

    def _begin(self, join: JoinLesson, check_disk: bool = True) -> LessonSession:
        """Sources, recorder and session for a lesson (media to the relay comes later)."""
        if check_disk:
            self._check_disk(self._lesson_need(join))
        self._ensure_sources(join.publish)
        lesson_id = join.lesson_id
        recorder = LessonRecorder(
            self.recordings_dir / lesson_id,
            lesson_id,
            self.classroom_id,
            self._segment_seconds,
            epoch=join.start_at,
            scheduled_s=join.end_at - join.start_at,
            now=self.clock.now,
            on_segment=lambda key, info: self._on_segment(lesson_id, key, info),
        )
        programme = self._start_programme(join)
        session = LessonSession(
            self.classroom_id,
            join,
            self.sources,
            recorder,
            self.link.request,
            programme=programme.runner
            if programme is not None and self.profile.profile.director.mode != "resource"
            else None,
        )
        session.on_decoded = self._on_decoded
        session.network = self.network.profile
        cap = self.network.video_cap_bps(join.rung)
        session.devices = {
            d.name: (d.role, min(d.bitrate, cap or d.bitrate)) for d in self.profile.profile.devices
        }
        if cap is not None:  # the rung the lesson was placed on: encoders start there
            for name in join.publish:
                source = self.sources.get(name)
                if source is not None and source.kind == "video":
                    source.set_bitrate(min(self.profile.profile.device(name).bitrate, cap))
        self.session = session
        return session

    def _start_programme(self, join: JoinLesson) -> Programme | None:
        """The director's programme (and its RTMP push) for a lesson, if the profile asks."""
        publishing = {n: self.sources[n] for n in join.publish if n in self.sources}
        try:
            programme = self.programme_desk.start(
                join.lesson_id, publishing, is_live=lambda: self.session is not None
            )
        except ValueError as err:
            log.warning("lesson %s: no programme: %s", join.lesson_id, err)
            self.alerts["director"] = str(err)
            return None
        self.alerts.pop("director", None)
        return programme

    def _start_panel(self) -> None:
        """Open the panel output window if the profile has one; a failure is an alert."""
        output = self.profile.profile.output
        if output is None:
            return
        try:
            window = PanelWindow(output)
            window.start()
        except RuntimeError as err:
            log.warning("%s", err)
            self.alerts["panel_output"] = str(err)
            return
        self.panel = window
        self.alerts.pop("panel_output", None)

    def _on_decoded(self, sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        """Remote media: the first remote camera to the panel, remote sound to the AEC."""
        if isinstance(frame, av.AudioFrame):
            if self.echo is not None:
                for chunk in self._far_resampler.resample(frame):
                    self.echo.far(chunk.to_ndarray().reshape(-1).astype(np.int16))
            return
        if self.panel is not None and self.session is not None:
            videos = [s for s in self.session.join.subscribe if s.kind == "video"]
            if videos and videos[0] == sub:
                self.panel.show("remote", frame)

    def _audio_filter(self, device: Device) -> AudioFilter | None:
        """The echo canceller for a microphone that asks for one (shared by the room)."""
        if not device.echo_cancel:
            return None
        if self.echo is None:
            self.echo = EchoCanceller()
        return self.echo.near

    def _ensure_sources(self, names: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for name in names:
            if name not in self.sources:
                device = self.profile.profile.device(name)
                cap = self.network.video_cap_bps()
                if cap is not None and device.media_kind == "video" and device.bitrate > cap:
                    device = device.model_copy(update={"bitrate": cap})
                runner = build_runner(
                    device,
                    self.profile.profile,
                    loop,
                    audio_filter=self._audio_filter(device),
                    is_live=lambda: self.session is not None,
                )
                runner.start()
                self.sources[name] = runner
                self.probed.pop(name, None)  # the runner reports its state now
        self._feed_corner()

    def _feed_corner(self) -> None:
        """Show the profile's local source in the panel window while it runs."""
        output = self.profile.profile.output
        if self.panel is None or output is None or not output.local:
            return
        source = self.sources.get(output.local)
        if self._corner is not None and (source is None or self._corner.bus is not source.bus):
            self._corner.stop()
            self._corner = None
        if source is not None and self._corner is None and source.kind == "video":
            panel = self.panel
            self._corner = BusDecoder(source.bus, lambda f: panel.show("local", f), max_fps=10)
            self._corner.start()

    def _stop_sources(self, keep: set[str] | None = None) -> None:
        for name in [n for n in self.sources if not keep or n not in keep]:
            self.sources.pop(name).stop()
        self._feed_corner()

    async def _join(self, join: JoinLesson) -> None:
        current = self.session
        if join.lesson_id in self._finished:
            raise ValueError(f"lesson {join.lesson_id} is already finished on this agent")
        if (
            current is not None
            and current.lesson_id != join.lesson_id
            and join.start_at >= current.join.end_at - HANDOVER_S
            and self.clock.now() < current.join.end_at
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
        elif current.join != join:
            current = await self._retune(current, join)
        # A repeated join (controller restarted, relay lost) renegotiates the media while
        # sources and recording carry on. The wrong network: recorded here, not streamed.
        now = self.clock.now()
        if join.start_at <= now < join.end_at and not current.recorder.recording:
            self._start_recording(join.lesson_id)
        self._check_placement()
        await current.connect()

    async def _retune(self, session: LessonSession, join: JoinLesson) -> LessonSession:
        """New terms for the lesson under way (extended, ended early, broadcast only):
        the same recorder carries on; the media is rebuilt for the new publish set."""
        log.info("lesson %s: new terms from the controller", join.lesson_id)
        if join.publish == session.join.publish and join.subscribe == session.join.subscribe:
            session.join = join  # only the times changed
            return session
        recording = session.recorder.recording
        await session.close()
        self._ensure_sources(join.publish)
        fresh = LessonSession(
            self.classroom_id, join, self.sources, session.recorder, self.link.request
        )
        self.session = fresh
        if recording:
            fresh.start_counting()
        return fresh

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
        self._enqueue_manifest(session.lesson_id, manifest)

    async def _leave(self, lesson_id: str) -> None:
        session = self._session_for(lesson_id)
        nxt = self._next
        soon = nxt is not None and nxt.start_at - self.clock.now() <= HANDOVER_S
        await self._end_session(session, keep_sources=set(nxt.publish) if nxt and soon else None)

    async def _end_session(self, session: LessonSession, keep_sources: set[str] | None) -> None:
        """Finish the recording, report and close a session (the current one or not)."""
        await self._finish_session_recording(session)
        report = LessonReport(lesson_id=session.lesson_id, tracks=session.report())
        await session.close()
        await self.programme_desk.stop(session.lesson_id)
        if self.session is session:
            self.session = None
        self._finished.add(session.lesson_id)
        self._stop_sources(keep_sources)
        if manual_start(session.lesson_id) is None:  # the timetable knows no manual one
            await self.link.send(report)

    def _session_for(self, lesson_id: str) -> LessonSession:
        if self.session is None or self.session.lesson_id != lesson_id:
            current = self.session.lesson_id if self.session else "none"
            raise ValueError(f"not in lesson {lesson_id!r} (current lesson: {current})")
        return self.session
