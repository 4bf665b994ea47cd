"""The edge agent daemon: control link, devices, heartbeats and uploads.

Lessons themselves (join, record, hand over, leave) live in
:mod:`edge_agent.lesson_lifecycle`; the daemon routes the controller's commands there.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal

import av
import numpy as np

from edge_agent import __version__, manual_record, remote_actions
from edge_agent.analytics.talk import TalkDesk, analysed_microphone, director_observer
from edge_agent.checks import check_device
from edge_agent.clock import ControllerClock
from edge_agent.delivery.lessons import PlaybackLessons
from edge_agent.director.programme import ProgrammeDesk
from edge_agent.disk import DEFAULT_RESERVE_BYTES, DiskPolicy
from edge_agent.health_report import device_states, inventory, media_stats, readiness, update_alerts
from edge_agent.identity import Identity
from edge_agent.lesson_hooks import LessonHooks
from edge_agent.lesson_lifecycle import LessonLifecycle
from edge_agent.link import ControlLink
from edge_agent.media.capture_runner import AudioFilter
from edge_agent.media.echo_cancel import EchoCanceller
from edge_agent.media.priority import favour_sound_threads, settle_garbage_collector
from edge_agent.media.rates import RateMeter
from edge_agent.network.interfaces import PlacementRefused
from edge_agent.network.policy import NetworkPolicy
from edge_agent.profile import Device, LoadedProfile
from edge_agent.recording.manifest import MANIFEST_NAME
from edge_agent.recording.segments import SegmentInfo, read_segment_infos, sha256_file
from edge_agent.room.outputs import RoomOutputs
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.session import LessonSession
from edge_agent.sources import MediaSource, build_runner
from edge_agent.systemd_notify import notify
from edge_agent.telemetry import snapshot
from edge_agent.updates.settings import LESSON_GUARD_S, UpdateSettings
from edge_agent.updates.updater import Updater
from edge_agent.uploads.credentials import CredentialStore, UploadCredentials
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.throttle import UploadLimits
from edge_agent.uploads.worker import Uploader
from edge_agent.workers import start_worker_pool
from protocols.envelope import Envelope
from protocols.media import aiortc_seam
from protocols.messages import (
    ActionResult,
    AgentAction,
    Body,
    CommandAck,
    FloorRequest,
    FloorState,
    Heartbeat,
    JoinLesson,
    LeaveLesson,
    Register,
    ScheduleUpdate,
    StartRecording,
    StopRecording,
    Subscription,
    UploadTokenUpdate,
)
from protocols.network_profile import NetworkProfile
from protocols.tls import pinned_client_context

log = logging.getLogger(__name__)

FLOOR_REQUEST_S = 3.0  # a clicker's floor change waits this long for the controller
READY_LINK_WAIT_S = 15.0  # systemd hears READY=1 after this even if the controller is away
PROBE_S = 60.0  # devices not in use are probed this often, so readiness stays true


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
        updates: UpdateSettings | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._updates = updates or UpdateSettings()
        self.updater: Updater | None = None
        self.network = NetworkPolicy(network_profile)
        self._seen_ack: object = None
        # Set by the console's "restart": the CLI then exits with RESTART_EXIT_CODE.
        self.restart_requested = False
        self.identity = identity
        self.profile = profile
        self._media_addresses = media_addresses
        self._segment_seconds = segment_seconds
        self.link = ControlLink(identity, self._register, self._heartbeat, self._on_command)
        # A registration is the controller (back) in reach: every upload waiting out its
        # backoff goes at once. (Heartbeats stop while unregistered, so they cannot see the
        # return themselves.)
        self.link.on_registered = self._controller_back
        self.clock = ControllerClock(state_dir)
        self.recordings_dir = state_dir / "recordings"
        self.journal = UploadJournal(state_dir / "uploads.sqlite3")
        self.upload_credentials = CredentialStore(state_dir)
        self._credentials_ack: object = None
        limits = upload_limits or UploadLimits()
        self.uploader = Uploader(
            self.journal,
            identity.classroom_id,
            self._upload_credentials,
            lambda: limits.live_bps if self._live() else limits.idle_bps,
            controller_tls=(
                pinned_client_context(identity.controller_ca_pem)
                if identity.controller_ca_pem
                else None
            ),
        )
        self.disk = DiskPolicy(self.recordings_dir, self.journal, disk_reserve_bytes)
        self.alerts: dict[str, str] = {}
        # Cancels what the room's speakers play out of the room microphones: one for the
        # room, made up front so the speakers can give it exactly what they play.
        self.echo: EchoCanceller | None = (
            EchoCanceller() if any(d.echo_cancel for d in profile.profile.devices) else None
        )
        self._far_resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        # The room's speakers, screens and floor (课堂互动).
        self.room = RoomOutputs(
            profile.profile,
            identity.classroom_id,
            state_dir,
            self.alerts,
            echo=self.echo,
            send_floor=self._send_floor,
        )
        self.sources: dict[str, MediaSource] = {}
        self._stopping = asyncio.Event()
        self.schedule = ScheduleCache(state_dir)
        self._offline_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        # Devices not in a lesson: the result of their last probe (name → (ok, detail)).
        self.probed: dict[str, tuple[bool, str]] = {}
        self._rates = RateMeter()
        # The director's programme and its live push, per lesson (movie mode, push_url).
        self.programme_desk = ProgrammeDesk(profile.profile)
        # Who talks, second by second (S-T analysis): only the codes leave the school.
        self.talk = TalkDesk(self.clock.now)
        self.lessons = LessonLifecycle(
            LessonHooks(
                classroom_id=identity.classroom_id,
                profile=profile.profile,
                now=self.clock.now,
                request=self.link.request,
                send=self.link.send,
                online=lambda: self.link.online,
                sources=self.sources,
                ensure_sources=self._ensure_sources,
                stop_sources=self._stop_sources,
                recordings_dir=self.recordings_dir,
                segment_seconds=segment_seconds,
                on_segment=self._on_segment,
                on_manifest=self._enqueue_manifest,
                programme_desk=self.programme_desk,
                network=self.network,
                check_placement=self._check_placement,
                check_disk=self._check_disk,
                alerts=self.alerts,
                schedule=self.schedule,
                talk_timeline=self.talk.lesson_ended,
            ),
            on_decoded=self._on_decoded,
            on_session_started=self._session_started,
            on_session_ended=lambda s: self.room.lesson_ended(s.lesson_id),
        )

        # Delivery lessons on demand: the room plays a library recording (edge_agent.delivery).
        self.playbacks = PlaybackLessons(
            state_dir,
            identity.classroom_id,
            self.clock.now,
            self._upload_credentials,
            (
                pinned_client_context(identity.controller_ca_pem)
                if identity.controller_ca_pem
                else None
            ),
            self.room,
            self.sources,
            self.link.send,
        )

    @property
    def session(self) -> LessonSession | None:
        """The session of the lesson under way, if any."""
        return self.lessons.session

    @property
    def classroom_id(self) -> str:
        """The classroom this agent runs."""
        return self.identity.classroom_id

    def _upload_credentials(self) -> tuple[str, str] | None:
        """The stored credentials; each registration's ack brings a fresh token."""
        ack = self.link.register_ack
        if ack is not None and ack is not self._credentials_ack:
            self._credentials_ack = ack
            self.upload_credentials.save(UploadCredentials(ack.upload_url, ack.upload_token))
        creds = self.upload_credentials.current
        return None if creds is None or not creds.url else (creds.url, creds.token)

    def _register(self) -> Register:
        return Register(
            classroom_id=self.classroom_id,
            agent_version=__version__,
            profile_name=self.profile.profile.name,
            profile_digest=self.profile.digest,
            inventory=inventory(self.profile.profile),
            active_lesson_id=self.session.lesson_id if self.session else None,
        )

    def _controller_back(self) -> None:
        self.uploader.kick(now=True)

    def _heartbeat(self, seq: int) -> Heartbeat:
        notify("WATCHDOG=1")
        self._take_network_profile()
        self.clock.update(self.link.clock.offset_s)
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
            pushes=self.programme_desk.statuses(),
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
        favour_sound_threads()
        loop = asyncio.get_running_loop()
        start_worker_pool(loop)  # every worker thread now: the count stays flat after
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Start the link and the uploader."""
        aiortc_seam.size_receive_buffers()
        if self._media_addresses:
            aiortc_seam.pin_host_addresses(self._media_addresses)
        self.schedule.load()
        self._enqueue_existing()
        self._offline_task = asyncio.create_task(self._keep_schedule(), name="schedule")
        await self.link.start()
        await self.uploader.start()
        await self.room.start()
        await self._probe_devices()
        self._probe_task = asyncio.create_task(self._keep_probing(), name="probe")
        await self._start_updater()
        try:
            await asyncio.wait_for(self.link.registered.wait(), READY_LINK_WAIT_S)
            link = "controller link up"
        except TimeoutError:
            link = "controller unreachable, recording from the cached timetable"
            log.warning("no answer from the controller yet; carrying on offline")
        failed = sorted(n for n, (ok, _) in self.probed.items() if not ok)
        devices = f"devices failing: {', '.join(failed)}" if failed else "devices ready"
        settle_garbage_collector()
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
        if self.updater is not None:
            await self.updater.stop()
        await self.lessons.close()
        await self.playbacks.close()
        self._stop_sources()
        await self.room.stop()
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
            if isinstance(body, UploadTokenUpdate):
                # Rotation: use it from now on; the controller retires the old one once
                # this is acknowledged (after a grace for uploads under way).
                await asyncio.to_thread(self.upload_credentials.update_token, body.upload_token)
                log.info("upload token rotated by the controller")
            elif isinstance(body, JoinLesson) and body.playback is not None:
                await self.playbacks.join(body)
            elif isinstance(body, LeaveLesson) and self.playbacks.has(body.lesson_id):
                await self.playbacks.leave(body.lesson_id)
            elif isinstance(body, StartRecording | StopRecording) and self.playbacks.has(
                body.lesson_id
            ):
                pass  # a played lesson records nothing
            elif isinstance(body, JoinLesson):
                await self.lessons.join(body)
            elif isinstance(body, StartRecording):
                await self.lessons.start_recording(body.lesson_id)
            elif isinstance(body, StopRecording):
                await self.lessons.stop_recording(body.lesson_id)
            elif isinstance(body, LeaveLesson):
                await self.lessons.leave(body.lesson_id)
            elif isinstance(body, FloorState):
                self.room.apply_floor(body)
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
                self._restart_soon()
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

    def _restart_soon(self) -> None:
        """Stop, then exit with RESTART_EXIT_CODE: systemd starts the agent again."""
        self.restart_requested = True
        asyncio.get_running_loop().call_later(0.5, self._stopping.set)

    async def _start_updater(self) -> None:
        """Staged updates (edge_agent.updates): settle the last one, poll for the next."""
        self.updater = Updater(
            self._updates.releases,
            self.state_dir,
            self.classroom_id,
            __version__,
            self._updates.public_key(),
            self._upload_credentials,
            (
                pinned_client_context(self.identity.controller_ca_pem)
                if self.identity.controller_ca_pem
                else None
            ),
            self._update_busy,
            self._update_health,
            self._restart_soon,
            self._updates.poll_s,
        )
        await self.updater.start()

    def _update_busy(self) -> str:
        """Why the agent may not update now: a lesson under way or starting soon."""
        if self.session is not None:
            return f"lesson {self.session.lesson_id} under way"
        now = self.clock.now()
        for lesson in self.schedule.lessons:
            if lesson.start_at - LESSON_GUARD_S <= now < lesson.end_at:
                return f"lesson {lesson.lesson_id} at {lesson.start_at:.0f}"
        return ""

    def _update_health(self) -> dict[str, bool]:
        """A new release is healthy when registered, its devices probed and working, and
        its clock measured against the controller's."""
        devices = self.profile.profile.devices
        return {
            "registered": self.link.registered.is_set(),
            "devices": bool(devices)
            and all(
                d.name in self.sources or self.probed.get(d.name, (False, ""))[0] for d in devices
            ),
            "clock": self.link.clock.offset_s is not None,
        }

    async def _keep_schedule(self) -> None:
        """Act on record requests and move lessons along by the clock, tick by tick."""
        while True:
            try:
                await manual_record.serve(
                    self.state_dir, self.lessons.record_by_hand, self.lessons.stop_by_hand
                )
                await self.lessons.step(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schedule step failed; carrying on")
            await asyncio.sleep(self.lessons.until_next_event(self.clock.now()))

    def _check_disk(self, need: int) -> None:
        check = self.disk.ensure(need)
        if check.ok:
            if self.alerts.pop("disk_low", None):
                log.info("disk space is sufficient again")
        else:
            if "disk_low" not in self.alerts:
                log.error("%s", check.message)
            self.alerts["disk_low"] = check.message

    async def _send_floor(self, request: FloorRequest) -> FloorState:
        """Ask the controller for a floor change made with the room's keys."""
        reply = await self.link.request(request, FLOOR_REQUEST_S)
        return reply.expect(FloorState)

    def _on_decoded(self, sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        """Remote media to the room's speakers and screens."""
        if isinstance(frame, av.AudioFrame) and self.room.sound is None and self.echo is not None:
            # No speakers of ours: whatever plays the sound, the AEC hears it as decoded.
            for chunk in self._far_resampler.resample(frame):
                self.echo.far(chunk.to_ndarray().reshape(-1).astype(np.int16))
        self.room.on_decoded(sub, frame)

    def _session_started(self, session: LessonSession) -> None:
        self.room.lesson_started(session.join, self.sources)
        join = session.join
        self.talk.lesson_started(
            join.lesson_id,
            join.role == "lead",
            analysed_microphone(self.profile.profile, join.publish),
            director_observer(self.programme_desk, join.lesson_id),
        )

    def _audio_filter(self, device: Device) -> AudioFilter | None:
        """The echo canceller for a microphone that asks for one (shared by the room),
        then the talk analytics, which hear what is left."""
        if not device.echo_cancel:
            return self.talk.filter_for(device.name, None)
        if self.echo is None:  # the profile changed under a running agent; never otherwise
            self.echo = EchoCanceller()
        return self.talk.filter_for(device.name, self.echo.near)

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
        self.room.sources_changed()

    def _stop_sources(self, keep: set[str] | None = None) -> None:
        for name in [n for n in self.sources if not keep or n not in keep]:
            self.sources.pop(name).stop()
        self.room.sources_changed()
