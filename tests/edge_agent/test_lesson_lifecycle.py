"""The lesson lifecycle with fake devices: a session built for new terms mid-lesson (a
retune, e.g. "broadcast only") is configured exactly like the one the lesson began with,
the session hooks hear of every session that starts and ends, and a day of lessons under
the agent's garbage-collector settings leaves no encoder (and no encoder thread) behind."""

from __future__ import annotations

import asyncio
import gc
import pathlib
import time
from collections.abc import Callable, Iterator

import av
import psutil
import pytest

from edge_agent.director.programme import ProgrammeDesk
from edge_agent.lesson_hooks import LessonHooks
from edge_agent.lesson_lifecycle import LessonLifecycle
from edge_agent.media.bus import FrameBus
from edge_agent.media.encoders import VideoEncoder
from edge_agent.media.level import SilenceAlarm
from edge_agent.media.priority import settle_garbage_collector
from edge_agent.network.interfaces import PlacementRefused
from edge_agent.network.policy import NetworkPolicy
from edge_agent.profile import DirectorSettings, HardwareProfile, load_profile
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.session import LessonSession
from edge_agent.sources import MediaSource
from protocols.media.encoded_frame import EncodedFrame
from protocols.messages import Body, JoinLesson, LessonReport, Subscription
from protocols.network_profile import NetworkProfile, Rung

ROOT = pathlib.Path(__file__).parents[2]

RURAL = NetworkProfile(
    name="rural",
    vlan_id=120,
    subnet="10.20.120.0/24",
    classroom_cap_kbps=3000,
    ladder=(
        Rung(name="720p", width=1280, height=720, kbps=1200),
        Rung(name="360p", width=640, height=360, kbps=500),
    ),
)


class FakeSource:
    """A device that never produces a frame; it remembers what it was asked."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.fps = 25.0
        self.width, self.height = (640, 360) if kind == "video" else (0, 0)
        self.bus = FrameBus(name, kind)
        self.silence = SilenceAlarm()
        self.state = "ok"
        self.detail = ""
        self.level_dbfs = None
        self.bitrates: list[int] = []

    def start(self) -> None:
        """Nothing to open."""

    def stop(self) -> None:
        """Nothing to close."""

    def request_keyframe(self) -> None:
        """No encoder to ask."""

    def set_bitrate(self, bps: int) -> bool:
        self.bitrates.append(bps)
        return True


class FakeProgramme:
    """The director's programme without a director: just its runner."""

    def __init__(self) -> None:
        self.runner = FakeSource("programme", "video")


class FakeDesk(ProgrammeDesk):
    """Hands out fake programmes, one per lesson, and counts them."""

    def __init__(self, profile: HardwareProfile) -> None:
        super().__init__(profile)
        self.started = 0

    def start(  # type: ignore[override]
        self,
        lesson_id: str,
        publishing: dict[str, MediaSource],
        is_live: Callable[[], bool],
        targets: object = None,
    ) -> FakeProgramme:
        self.started += 1
        programme = FakeProgramme()
        self.programmes[lesson_id] = programme  # type: ignore[assignment]
        return programme

    async def stop(self, lesson_id: str) -> None:
        self.programmes.pop(lesson_id, None)


class EncodingSource(FakeSource):
    """A video device with a real x264 encoder (whose threads are native), held as a live
    lesson holds a source: in a reference cycle (its bus → a sink → the source; in the
    agent the sink is the sender's track, which holds the source's keyframe request)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name, kind)
        self.encoder = VideoEncoder(320, 180, 15, 300_000, preset="ultrafast")
        self.bus.subscribe(self._sink)

    def _sink(self, frame: EncodedFrame) -> None:
        """Nothing is sent."""


class Room:
    """A lifecycle wired to fakes, and what its hooks heard."""

    def __init__(
        self,
        tmp_path: pathlib.Path,
        source: type[FakeSource] = FakeSource,
        collect_after_s: float = 2.0,
    ) -> None:
        self.source = source
        loaded = load_profile(ROOT / "hardware_profiles" / "synthetic.toml")
        self.profile = loaded.profile.model_copy(update={"director": DirectorSettings(mode="both")})
        self.sources: dict[str, MediaSource] = {}
        self.sent: list[Body] = []
        self.events: list[tuple[str, LessonSession]] = []
        self.desk = FakeDesk(self.profile)
        self.lessons = LessonLifecycle(
            LessonHooks(
                classroom_id="c1",
                profile=self.profile,
                now=time.time,
                request=self._no_relay,
                send=self._send,
                online=lambda: True,
                sources=self.sources,
                ensure_sources=self._ensure,
                stop_sources=self._stop,
                recordings_dir=tmp_path / "recordings",
                segment_seconds=10.0,
                on_segment=lambda lesson_id, key, info: None,
                on_manifest=lambda lesson_id, path: None,
                programme_desk=self.desk,
                network=NetworkPolicy(RURAL),
                check_placement=self._refuse,
                check_disk=lambda need: None,
                alerts={},
                schedule=ScheduleCache(tmp_path),
            ),
            on_decoded=self.on_decoded,
            on_session_started=lambda s: self.events.append(("started", s)),
            on_session_ended=lambda s: self.events.append(("ended", s)),
            collect_after_s=collect_after_s,
        )

    def on_decoded(self, sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        """Where remote media would go (the panel, the echo canceller, room outputs)."""

    async def _no_relay(self, body: Body, timeout: float) -> object:
        raise AssertionError("no relay in this test")

    async def _send(self, body: Body) -> bool:
        self.sent.append(body)
        return True

    def _ensure(self, names: list[str]) -> None:
        for name in names:
            if name not in self.sources:
                kind = self.profile.device(name).media_kind
                self.sources[name] = (self.source if kind == "video" else FakeSource)(name, kind)

    def _stop(self, keep: set[str] | None) -> None:
        for name in [n for n in self.sources if not keep or n not in keep]:
            del self.sources[name]

    def _refuse(self) -> None:
        # No relay here: refuse to stream, as on the wrong network, once the session is
        # built and recording (the join then stops short of connecting).
        raise PlacementRefused("unit test: recorded here, not streamed")

    async def join(self, join: JoinLesson) -> LessonSession:
        """Join and return the session the lifecycle made current."""
        with pytest.raises(PlacementRefused):
            await self.lessons.join(join)
        session = self.lessons.session
        assert session is not None
        return session


def _lesson(subscribe: list[Subscription], lesson_id: str = "L1") -> JoinLesson:
    now = time.time()
    return JoinLesson(
        lesson_id=lesson_id,
        role="lead",
        publish=["teacher", "mic"],
        subscribe=subscribe,
        start_at=now - 1,
        end_at=now + 60,
        rung="360p",
    )


TWO_WAY = [
    Subscription(source_classroom="c2", track="teacher", kind="video", width=640, height=360),
    Subscription(source_classroom="c2", track="mic", kind="audio"),
]


async def test_a_retuned_session_is_configured_like_the_first(tmp_path: pathlib.Path) -> None:
    room = Room(tmp_path)
    first = await room.join(_lesson(TWO_WAY))
    try:
        assert first.recorder.recording
        # "Broadcast only": the controller drops what this classroom receives.
        retuned = await room.join(_lesson([]))
        assert retuned is not first and retuned.join.subscribe == []
        assert retuned.recorder is first.recorder and retuned.recorder.recording
        assert retuned.on_decoded == first.on_decoded == room.on_decoded
        assert retuned.network == first.network == RURAL
        # Encoders and the rate adapter stay at the lesson's rung (500 kbit/s).
        assert retuned.devices == first.devices
        assert retuned.devices["teacher"] == ("teacher", 500_000)
        assert retuned.programme is not None and retuned.programme is first.programme
        assert room.desk.started == 1  # the programme carries on across the retune
    finally:
        await room.lessons.close()


async def test_session_hooks_hear_each_session_start_and_end(tmp_path: pathlib.Path) -> None:
    room = Room(tmp_path)
    first = await room.join(_lesson(TWO_WAY))
    same = await room.join(_lesson(TWO_WAY).model_copy(update={"end_at": time.time() + 90}))
    assert same is first  # only the times changed: no new session
    retuned = await room.join(_lesson([]))
    await room.lessons.leave("L1")
    assert room.events == [
        ("started", first),
        ("ended", first),
        ("started", retuned),
        ("ended", retuned),
    ]
    assert room.lessons.session is None and room.sources == {}
    assert [type(b) for b in room.sent] == [LessonReport]


@pytest.fixture
def agent_gc() -> Iterator[None]:
    """The garbage collector as the agent sets it after start-up (frozen, rare
    collections), put back afterwards."""
    thresholds = gc.get_threshold()
    watch = settle_garbage_collector()
    try:
        yield
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def test_a_day_of_lessons_leaves_no_encoder_threads_behind(
    tmp_path: pathlib.Path, agent_gc: None
) -> None:
    # bench-soak found each lesson's sources, encoders and x264 threads kept in reference
    # cycles until a rare gen-2 collection: +10 threads and about 90 MB a lesson.
    room = Room(tmp_path, source=EncodingSource, collect_after_s=0.05)
    proc = psutil.Process()
    during, after = [], []
    for i in range(6):
        await room.join(_lesson(TWO_WAY, lesson_id=f"L{i}"))
        during.append(proc.num_threads())
        await room.lessons.leave(f"L{i}")
        room.events.clear()  # the test's own record of sessions would keep them
        await asyncio.sleep(0.3)
        after.append(proc.num_threads())
    # The first lesson starts threads that stay (the loop's worker for blocking calls).
    assert after[1:] == [after[0]] * 5, f"threads after each lesson: {after}"
    assert all(d > a for d, a in zip(during, after, strict=True)), "no encoder threads ran"
