"""The programme (导播画面): the director's cut of the classroom, as one more source.

Each camera's encoded frames are decoded off the event loop (``BusDecoder``); the director
watches small grey copies at 5 fps and decides the shot, recalling the camera's PTZ preset
when the profile has one. A ``SourceRunner`` then composes the current shot with its
picture-in-picture at the programme's rate and encodes it once; its bus feeds the
recorder (movie mode) and the RTMP push like any other source.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import av

from edge_agent.devices.visca import ViscaClient, ViscaError
from edge_agent.director.compose import PipComposer, PipLayout
from edge_agent.director.director import Director
from edge_agent.director.rules import Cut
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import VideoEncoder
from edge_agent.media.preview import BusDecoder
from edge_agent.media.rtmp_push import RtmpPush
from edge_agent.media.source_runner import SourceRunner
from edge_agent.profile import DirectorSettings, HardwareProfile
from edge_agent.sources import MediaSource
from protocols.messages import PushStatus, PushTarget

log = logging.getLogger(__name__)

# The name of the profile's own ``push_url`` among a lesson's pushes.
PROFILE_TARGET = "classroom default"

# Device roles as the director knows them (the panel's content is the "panel" shot).
DIRECTOR_ROLE = {"teacher": "teacher", "student": "student", "board": "board", "content": "panel"}
PROGRAMME = "programme"


class ProgrammeDevice:
    """Composes the latest frame of each role for the current shot (runner thread)."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self.width, self.height = width, height
        self._pts_step = 90000 // fps
        self.composer = PipComposer(PipLayout(width=width, height=height))
        self._latest: dict[str, av.VideoFrame] = {}
        self._lock = threading.Lock()
        self.shot: str = "teacher_wide"
        self._black = av.VideoFrame(width, height, "yuv420p")
        for plane, value in zip(self._black.planes, (16, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)

    def offer(self, role: str, frame: av.VideoFrame) -> None:
        """The newest decoded frame of a camera."""
        with self._lock:
            self._latest[role] = frame

    def frame(self, counter: int, capture_ms: int) -> av.VideoFrame:
        """The programme picture now (black until a camera has given a frame)."""
        with self._lock:
            latest = dict(self._latest)
        out = self.composer.compose_for(self.shot, latest)  # type: ignore[arg-type]
        if out is None:  # the shot's camera has nothing: fall back to the teacher
            out = self.composer.compose_for("teacher_wide", latest)
        if out is None:
            out = self._black
        out.pts = counter * self._pts_step
        return out


class Programme:
    """The director, the decoders that feed it and the runner that encodes the programme."""

    def __init__(
        self,
        profile: HardwareProfile,
        settings: DirectorSettings,
        sources: dict[str, MediaSource],
        loop: asyncio.AbstractEventLoop,
        is_live: Callable[[], bool] = lambda: False,
    ) -> None:
        self.profile = profile
        self.settings = settings
        self._loop = loop
        self.roles: dict[str, str] = {}  # device name → director role
        for device in profile.devices:
            role = DIRECTOR_ROLE.get(device.role)
            if role and device.name in sources and role not in self.roles.values():
                self.roles[device.name] = role
        if "teacher" not in self.roles.values():
            raise ValueError(
                f"profile {profile.name!r}: the director needs a camera with role 'teacher'"
            )
        self.device = ProgrammeDevice(settings.width, settings.height, settings.fps)
        self.director = Director(self.roles.values(), on_cut=self._on_cut)
        self.decoders = [
            BusDecoder(sources[name].bus, self._feeder(role), max_fps=settings.fps)
            for name, role in self.roles.items()
        ]
        encoder = VideoEncoder(
            settings.width,
            settings.height,
            settings.fps,
            settings.bitrate,
            profile.encoder.video_codec,
            profile.encoder.preset,
            profile.encoder.gop_seconds,
        )
        self.runner = SourceRunner(
            PROGRAMME,
            "video",
            self.device,
            encoder,
            settings.fps,
            FrameBus(PROGRAMME, "video"),
            loop,
            settings.width,
            settings.height,
            is_live,
        )
        self._ticker: asyncio.Task[None] | None = None
        self.cuts: list[Cut] = []

    def _feeder(self, role: str) -> Callable[[av.VideoFrame], None]:
        def feed(frame: av.VideoFrame) -> None:  # decoder thread
            self.device.offer(role, frame)
            t = time.monotonic()
            if self.director.wants(role, t):
                small = frame.reformat(width=320, height=180, format="gray").to_ndarray()
                self._loop.call_soon_threadsafe(self._watch, role, small, t)

        return feed

    def _watch(self, role: str, small: Any, t: float) -> None:
        self.director.feed(role, small, t)

    def _on_cut(self, cut: Cut) -> None:
        self.cuts.append(cut)
        self.device.shot = cut.shot
        log.info("director: %s (%s)", cut.shot, cut.reason)
        if cut.preset is None:
            return
        camera = next(
            (d for d in self.profile.devices if DIRECTOR_ROLE.get(d.role) == cut.source_role),
            None,
        )
        if camera is not None and camera.ptz is not None and cut.preset in camera.ptz.presets:
            task = self._loop.create_task(
                self._recall(camera.ptz.host, camera.ptz.port, camera.ptz.presets[cut.preset])
            )
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _recall(self, host: str, port: int, preset: int) -> None:
        try:
            async with ViscaClient(host, port) as ptz:
                await ptz.recall_preset(preset)
        except (ViscaError, OSError) as err:
            log.warning("director: PTZ preset %d on %s failed: %s", preset, host, err)

    async def _tick(self) -> None:
        while True:
            self.director.tick(time.monotonic())
            await asyncio.sleep(1.0 / self.director.fps)

    def start(self) -> None:
        """Start decoding, directing and encoding the programme."""
        for decoder in self.decoders:
            decoder.start()
        self.runner.start()
        self._ticker = self._loop.create_task(self._tick(), name="director")

    def stop(self) -> None:
        """Stop everything the programme runs."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.runner.stop()
        for decoder in self.decoders:
            decoder.stop()


class ProgrammeDesk:
    """The programmes (and live pushes) of the lessons under way, by lesson id.

    A lesson's pushes go to the targets the controller sent in its join (the scheduler's
    per-lesson live platforms); a lesson that names none pushes to the profile's
    ``push_url``, the classroom's standing address, if it has one.
    """

    def __init__(self, profile: HardwareProfile) -> None:
        self.profile = profile
        self.programmes: dict[str, Programme] = {}
        # lesson id → (target name, address) → its push
        self.pushes: dict[str, dict[tuple[str, str], RtmpPush]] = {}
        self._publishing: dict[str, dict[str, MediaSource]] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # pushes a new target list dropped

    def _targets(self, targets: list[PushTarget]) -> list[tuple[str, str]]:
        if targets:
            return [(t.name, t.url) for t in targets]
        url = self.profile.director.push_url
        return [(PROFILE_TARGET, url)] if url else []

    def start(
        self,
        lesson_id: str,
        publishing: dict[str, MediaSource],
        is_live: Callable[[], bool],
        targets: list[PushTarget] | None = None,
    ) -> Programme | None:
        """The lesson's programme, if the profile or the lesson's push targets ask for one
        (ValueError: it cannot)."""
        settings = self.profile.director
        wanted = self._targets(targets or [])
        if settings.mode == "resource" and not wanted:
            return None
        loop = asyncio.get_running_loop()
        programme = Programme(self.profile, settings, publishing, loop, is_live=is_live)
        programme.start()
        self.programmes[lesson_id] = programme
        self._publishing[lesson_id] = publishing
        self._reconcile(lesson_id, wanted)
        return programme

    def _reconcile(self, lesson_id: str, wanted: list[tuple[str, str]]) -> None:
        """Start the pushes newly wanted, stop those no longer wanted."""
        programme = self.programmes.get(lesson_id)
        if programme is None:
            return
        loop = asyncio.get_running_loop()
        running = self.pushes.setdefault(lesson_id, {})
        for key in [k for k in running if k not in wanted]:
            push = running.pop(key)
            log.info("lesson %s: live push %s to %s stopped", lesson_id, key[0], push.where)
            stopping = loop.create_task(push.stop(), name=f"push-stop-{lesson_id}")
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
        publishing = self._publishing.get(lesson_id, {})
        mic = next((s for s in publishing.values() if s.kind == "audio"), None)
        settings = self.profile.director
        for key in wanted:
            if key in running:
                continue
            push = RtmpPush(
                key[1],
                programme.runner.bus,
                mic.bus if mic is not None else None,
                width=settings.width,
                height=settings.height,
                fps=settings.fps,
                request_keyframe=programme.runner.request_keyframe,
            )
            running[key] = push
            log.info("lesson %s: live push %s to %s", lesson_id, key[0], push.where)
            task = loop.create_task(push.start(), name=f"push-{lesson_id}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def statuses(self) -> list[PushStatus]:
        """Every push of the lessons under way, for the heartbeat."""
        out: list[PushStatus] = []
        for lesson_id, running in self.pushes.items():
            for (name, _url), push in running.items():
                st = push.status()
                out.append(
                    PushStatus(
                        lesson_id=lesson_id,
                        name=name,
                        where=push.where,
                        state=push.state,  # type: ignore[arg-type]
                        live_since=st["live_since"],
                        bytes=int(st["bytes"]),
                        reconnects=push.reconnects,
                        last_error=push.last_error[:500],
                    )
                )
        return out

    def for_lesson(
        self,
        lesson_id: str,
        publishing: dict[str, MediaSource],
        is_live: Callable[[], bool],
        targets: list[PushTarget] | None = None,
    ) -> Programme | None:
        """The lesson's running programme, else :meth:`start` (new terms mid-lesson keep
        the programme, its recording and the pushes that are still wanted going; a push
        target added or removed mid-lesson starts or stops just that push)."""
        running = self.programmes.get(lesson_id)
        if running is None:
            return self.start(lesson_id, publishing, is_live, targets)
        self._reconcile(lesson_id, self._targets(targets or []))
        return running

    async def stop(self, lesson_id: str) -> None:
        """Stop the lesson's pushes, then its programme."""
        for push in self.pushes.pop(lesson_id, {}).values():
            await push.stop()
        self._publishing.pop(lesson_id, None)
        programme = self.programmes.pop(lesson_id, None)
        if programme is not None:
            programme.stop()
