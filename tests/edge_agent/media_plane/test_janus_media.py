"""Agents publish and subscribe through a real Janus VideoRoom, with the PIN the
controller's media plane gave the room: counters read off decoded frames, sound, PLI to
the publishing encoder, a wrong PIN, and a killed instance."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import numpy as np
import pytest
from agent_janus_fixtures import CountingRunner, Lesson, camera, microphone
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from edge_agent.media import barcode
from edge_agent.media.source_runner import SourceRunner
from edge_agent.media_plane.exceptions import JanusDenied, JanusLost
from edge_agent.media_plane.janus_session import JanusSession
from edge_agent.media_plane.lesson import JanusLessonMedia
from edge_agent.media_plane.publisher import JanusPublisher
from edge_agent.media_plane.subscriber import JanusSubscriber, RemoteTrack
from protocols.media.encoded_frame import EncodedFrame
from protocols.media.h264 import is_keyframe
from protocols.messages import JanusPlacement, JoinLesson, Subscription
from protocols.network_profile import load_network_profile_toml

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]

NETWORK = load_network_profile_toml(
    """
name = "janus-test"
subnet = "10.77.0.0/16"
classroom_cap_kbps = 3000
ladder = [{ name = "360p", width = 640, height = 360, kbps = 600 }]
""",
    "test",
)

StartLesson = Callable[..., Awaitable[Lesson]]


@dataclass
class Watched:
    """What a receiving classroom saw of one remote track."""

    counters: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    decoded: int = 0
    encoded: list[tuple[float, bool]] = field(default_factory=list)  # (loop time, keyframe)


def video(classroom: str, track: str) -> Subscription:
    return Subscription(
        source_classroom=classroom, track=track, kind="video", width=320, height=240, fps=15
    )


def audio(classroom: str, track: str) -> Subscription:
    return Subscription(source_classroom=classroom, track=track, kind="audio")


class Viewer:
    """Taps and decodes a subscriber's tracks as the session does, reading the counters."""

    def __init__(self) -> None:
        self.seen: dict[str, Watched] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def tap(self, sub: Subscription) -> Callable[[str, JitterFrame], None]:
        watched = self.seen.setdefault(f"{sub.source_classroom}-{sub.track}", Watched())
        loop = asyncio.get_running_loop()

        def on_frame(kind: str, frame: JitterFrame) -> None:
            key = is_keyframe(frame.data) if kind == "video" else True
            watched.encoded.append((loop.time(), key))

        return on_frame

    def consume(self, subscriber: JanusSubscriber) -> None:
        for remote in subscriber.received.values():
            self._tasks.append(asyncio.create_task(self._drain(remote)))

    async def _drain(self, remote: RemoteTrack) -> None:
        watched = self.seen[remote.key]
        try:
            while True:
                frame = await remote.track.recv()
                watched.decoded += 1
                if not isinstance(frame, av.VideoFrame):
                    continue
                plane = frame.planes[0]
                luma = np.frombuffer(memoryview(plane), np.uint8, count=64 * plane.line_size)
                stamp = barcode.read(luma.reshape(64, plane.line_size)[:, : plane.width])
                if stamp is not None:
                    watched.counters.append(stamp[0])
                    watched.latencies_ms.append(time.time() * 1000.0 - stamp[1])
        except MediaStreamError:
            return

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _counting_into(counters: list[int]) -> Callable[[EncodedFrame], None]:
    def sink(frame: EncodedFrame) -> None:
        counters.append(frame.meta.get("counter", -1))

    return sink


def _start(runners: list[SourceRunner], *new: CountingRunner) -> dict[str, CountingRunner]:
    for runner in new:
        runner.start()
        runners.append(runner)
    return {r.name: r for r in new}


async def test_lead_and_receiving_room_see_and_hear_each_other(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    url = lesson.placement.api_url
    lead_sources = _start(runners, camera("teacher"), camera("panel"), microphone("mic"))
    room_sources = _start(runners, camera("students"), microphone("room_mic"))
    # What each camera's encoder put out: on a starved CPU a source skips ticks, and
    # those counters were never sent, so delivery is counted against what was.
    sent: dict[str, list[int]] = {}
    for source in [*lead_sources.values(), *room_sources.values()]:
        sent[source.name] = []
        source.bus.subscribe(_counting_into(sent[source.name]))
    lead_session, room_session = JanusSession(url), JanusSession(url)
    await lead_session.start()
    await room_session.start()
    lead = JanusPublisher(
        lead_session, lesson.placement, "lead-1", dict(lead_sources), ["teacher", "panel", "mic"]
    )
    room = JanusPublisher(
        room_session, lesson.placement, "village-2", dict(room_sources), ["students", "room_mic"]
    )
    at_room, at_lead = Viewer(), Viewer()
    subscribers: list[JanusSubscriber] = []
    try:
        await lead.start()
        await room.start()
        # Each finds the other's feed by classroom and track names, from the room's events.
        lead_feed = await room.feeds.wait_for("lead-1", ["teacher", "panel", "mic"], 10)
        room_feed = await lead.feeds.wait_for("village-2", ["students", "room_mic"], 10)
        to_room = JanusSubscriber(
            room_session,
            lesson.placement,
            lead_feed,
            [video("lead-1", "teacher"), video("lead-1", "panel"), audio("lead-1", "mic")],
            tap=at_room.tap,
        )
        to_lead = JanusSubscriber(
            lead_session,
            lesson.placement,
            room_feed,
            [video("village-2", "students"), audio("village-2", "room_mic")],
            tap=at_lead.tap,
        )
        subscribers += [to_room, to_lead]
        await to_room.start()
        await to_lead.start()
        at_room.consume(to_room)
        at_lead.consume(to_lead)
        await asyncio.sleep(5)
    finally:
        await at_room.stop()
        await at_lead.stop()
        for sub in subscribers:
            await sub.stop()
        await lead.stop()
        await room.stop()
        await lead_session.stop()
        await room_session.stop()

    for key in ("lead-1-teacher", "lead-1-panel", "village-2-students"):
        watched = (at_room if key.startswith("lead") else at_lead).seen[key]
        got = watched.counters
        assert len(got) >= 40, f"{key}: only {len(got)} frames read in 5 s at 15 fps"
        # On a loopback veth, every frame sent after the first one read arrives.
        track = key.split("-", 2)[2]
        expected = {c for c in sent[track] if got[0] <= c <= got[-1]}
        delivered = len(expected & set(got)) / len(expected)
        assert delivered >= 0.95, (
            f"{key}: {len(expected & set(got))} of {len(expected)} frames sent were read; "
            f"{watched.decoded} frames decoded, {len(watched.encoded)} received"
        )
        # Janus forwards from wherever the GOP is; the keyframe it asks for follows soon.
        first_key = next(t for t, is_key in watched.encoded if is_key)
        assert first_key - watched.encoded[0][0] < 1.5, f"{key}: keyframe late"
        lat = sorted(watched.latencies_ms)
        print(
            f"{key}: {len(got)} frames, {delivered:.1%} delivered, counters {got[0]}..{got[-1]}, "
            f"latency p50 {lat[len(lat) // 2]:.0f} ms"
        )
    for key, viewer in (("lead-1-mic", at_room), ("village-2-room_mic", at_lead)):
        heard = viewer.seen[key]
        # 50 packets a second: well over 3 s worth of sound decoded.
        assert heard.decoded >= 150 and len(heard.encoded) >= 150, (key, heard.decoded)
        print(f"{key}: {len(heard.encoded)} Opus packets, {heard.decoded} decoded")
    # Nothing was re-encoded on the way: the publisher sent the bus's own packets.
    assert lead.sent["teacher"].frames > 0


async def test_a_subscriber_joining_mid_gop_gets_a_keyframe_from_the_encoder(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    url = lesson.placement.api_url
    # A 20 s GOP: without a keyframe request, a late subscriber would wait many seconds.
    sources = _start(runners, camera("teacher", gop_seconds=20.0))
    teacher = sources["teacher"]
    pub_session, sub_session = JanusSession(url), JanusSession(url)
    await pub_session.start()
    await sub_session.start()
    lead = JanusPublisher(pub_session, lesson.placement, "lead-1", dict(sources), ["teacher"])
    first, late = Viewer(), Viewer()
    subscribers: list[JanusSubscriber] = []
    loop = asyncio.get_running_loop()
    try:
        await lead.start()
        watcher = JanusPublisher(sub_session, lesson.placement, "observer", {}, [])
        await watcher.start()
        feed = await watcher.feeds.wait_for("lead-1", ["teacher"], 10)
        one = JanusSubscriber(
            sub_session, lesson.placement, feed, [video("lead-1", "teacher")], tap=first.tap
        )
        subscribers.append(one)
        await one.start()
        first.consume(one)
        await asyncio.sleep(3)  # well inside the GOP
        assert first.seen["lead-1-teacher"].counters, "the first subscriber got no frames"

        joined_at = loop.time()
        requests_before = len(teacher.keyframe_requests)
        two = JanusSubscriber(
            sub_session, lesson.placement, feed, [video("lead-1", "teacher")], tap=late.tap
        )
        subscribers.append(two)
        await two.start()
        late.consume(two)
        watched = late.seen["lead-1-teacher"]
        while not any(key for _, key in watched.encoded) and loop.time() - joined_at < 5:
            await asyncio.sleep(0.02)
        keyed = [t for t, key in watched.encoded if key]
        assert keyed, "the late subscriber got no keyframe within 5 s"
        to_keyframe = keyed[0] - joined_at
        asked = [t for t in teacher.keyframe_requests[requests_before:] if t >= joined_at]
        assert asked, "Janus never asked the publishing encoder for a keyframe"
        assert to_keyframe < 2.0, f"first keyframe {to_keyframe:.2f} s after joining"
        print(
            f"late subscriber: keyframe {to_keyframe * 1000:.0f} ms after joining; "
            f"encoder asked {(asked[0] - joined_at) * 1000:.0f} ms after joining"
        )

        # The subscriber's own PLI goes through Janus to the encoder too.
        await asyncio.sleep(1.5)  # Janus forwards at most one PLI a second per publisher
        before, sent_at = len(teacher.keyframe_requests), loop.time()
        assert two.request_keyframe()
        while len(teacher.keyframe_requests) == before and loop.time() - sent_at < 3:
            await asyncio.sleep(0.02)
        assert len(teacher.keyframe_requests) > before, "a subscriber's PLI did not reach us"
        while not [t for t, key in watched.encoded if key and t > sent_at]:
            assert loop.time() - sent_at < 3, "no keyframe followed the subscriber's PLI"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        assert watched.decoded > 0 and watched.counters
        await watcher.stop()
    finally:
        await first.stop()
        await late.stop()
        for sub in subscribers:
            await sub.stop()
        await lead.stop()
        await pub_session.stop()
        await sub_session.stop()


async def test_a_wrong_pin_or_room_is_refused_saying_what_to_do(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    url = lesson.placement.api_url
    session = JanusSession(url)
    await session.start()
    try:
        wrong = JanusPlacement(api_url=url, room=lesson.placement.room, pin="not-the-pin")
        intruder = JanusPublisher(session, wrong, "intruder", {}, [])
        with pytest.raises(JanusDenied) as refused:
            await intruder.start()
        assert refused.value.code == 433
        message = str(refused.value)
        assert url in message and "PIN" in message and "placement" in message
        assert "not-the-pin" not in message
        await intruder.stop()

        gone = JanusPlacement(api_url=url, room=lesson.placement.room + 1, pin=lesson.placement.pin)
        stray = JanusPublisher(session, gone, "stray", {}, [])
        with pytest.raises(JanusDenied, match="room is gone") as missing:
            await stray.start()
        assert missing.value.code == 426
        await stray.stop()
        # The session survives a refused request.
        assert not session.lost.is_set()
    finally:
        await session.stop()


async def test_a_killed_janus_is_reported_promptly(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    url = lesson.placement.api_url
    sources = _start(runners, camera("teacher"), microphone("mic"))
    losses: list[JanusLost] = []
    session = JanusSession(url, on_lost=losses.append)
    await session.start()
    lead = JanusPublisher(session, lesson.placement, "lead-1", dict(sources), ["teacher", "mic"])
    try:
        await lead.start()
        await asyncio.sleep(1)
        killed_at = time.monotonic()
        lesson.janus.kill()
        await asyncio.wait_for(session.lost.wait(), 5)
        noticed = time.monotonic() - killed_at
        assert noticed < 2.0, f"loss noticed after {noticed:.2f} s"
        assert len(losses) == 1 and url in str(losses[0]) and "re-join" in str(losses[0])
        print(f"janus killed: loss noticed after {noticed * 1000:.0f} ms")
        with pytest.raises(JanusLost):
            await lead.handle.request({"request": "configure"})
    finally:
        stop_started = time.monotonic()
        await lead.stop()
        await session.stop()
        assert time.monotonic() - stop_started < 3, "stopping against a dead Janus hung"


async def test_the_rooms_bitrate_cap_reaches_the_rate_adapter_and_media_is_dscp_marked(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson(bitrate=400_000)
    sources = _start(runners, camera("teacher"), microphone("mic"))
    estimates: list[tuple[str, int]] = []
    session = JanusSession(lesson.placement.api_url)
    await session.start()
    lead = JanusPublisher(
        session,
        lesson.placement,
        "lead-1",
        dict(sources),
        ["teacher", "mic"],
        on_estimate=lambda track, bps: estimates.append((track, bps)),
        network=NETWORK,
    )
    try:
        await lead.start()
        loop = asyncio.get_running_loop()
        began = loop.time()
        # Janus ramps its REMB up to the room's cap over its first seconds.
        while (estimates[-1][1] if estimates else 0) < 400_000:
            assert loop.time() - began < 8, f"REMB seen so far: {estimates}"
            await asyncio.sleep(0.05)
        assert {track for track, _ in estimates} == {"teacher"}
        assert max(bps for _, bps in estimates) == 400_000
        # The bundled ICE sockets (one per host address) carry the profile's marks.
        assert lead.marking is not None and lead.marking.sockets, lead.marking
        sent_before = lead.marking.stats.marked
        await asyncio.sleep(0.5)
        assert lead.marking.stats.marked > sent_before + 10  # audio EF, per datagram
    finally:
        await lead.stop()
        await session.stop()


async def test_a_frozen_janus_is_reported_by_the_keepalive(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    session = JanusSession(lesson.placement.api_url, keepalive_s=0.5, timeout_s=1.0)
    await session.start()
    listener = JanusPublisher(session, lesson.placement, "lead-1", {}, [])
    try:
        await listener.start()
        frozen_at = time.monotonic()
        os.kill(lesson.janus.pid, signal.SIGSTOP)  # alive, but answers nothing
        try:
            await asyncio.wait_for(session.lost.wait(), 5)
            noticed = time.monotonic() - frozen_at
        finally:
            os.kill(lesson.janus.pid, signal.SIGCONT)
        assert noticed < 2.5, f"a frozen instance noticed after {noticed:.2f} s"
        assert session.lost_error is not None and "no answer within 1 s" in str(session.lost_error)
        print(f"janus frozen: loss noticed after {noticed * 1000:.0f} ms")
    finally:
        await listener.stop()
        await session.stop()


async def test_an_unreachable_instance_is_reported_at_once() -> None:
    # Nothing listens on this port of loopback: refused straight away.
    session = JanusSession("http://127.0.0.1:9/janus", timeout_s=2)
    with pytest.raises(JanusLost, match=r"127\.0\.0\.1:9.*re-join"):
        await session.start()
    assert session.lost.is_set()


def _join(role: str, publish: list[str], subscribe: list[Subscription]) -> JoinLesson:
    now = time.time()
    return JoinLesson(
        lesson_id="lesson-1",
        role=role,  # type: ignore[arg-type]
        publish=publish,
        subscribe=subscribe,
        start_at=now,
        end_at=now + 2700,
    )


async def test_a_receiving_room_follows_the_lead_through_a_late_join_and_a_rejoin(
    start_lesson: StartLesson, runners: list[SourceRunner]
) -> None:
    lesson = await start_lesson()
    lead_sources = _start(runners, camera("teacher"), microphone("mic"))
    room_sources = _start(runners, camera("students"), microphone("room_mic"))
    seen = Viewer()
    room_join = _join(
        "receiver",
        ["students", "room_mic"],
        [video("lead-1", "teacher"), audio("lead-1", "mic")],
    )
    lead_join = _join(
        "lead", ["teacher", "mic"], [video("village-2", "students"), audio("village-2", "room_mic")]
    )
    # The receiving room is in the room first: the lead's feed does not exist yet.
    room = JanusLessonMedia(
        "village-2",
        room_join,
        lesson.placement,
        dict(room_sources),
        tap=seen.tap,
        on_subscribed=seen.consume,
    )
    leads: list[JanusLessonMedia] = []
    loop = asyncio.get_running_loop()
    try:
        await room.start()
        await asyncio.sleep(0.5)
        assert not room.all_subscribed()
        for attempt in range(2):  # the lead joins, then leaves and re-joins with a new feed
            lead = JanusLessonMedia("lead-1", lead_join, lesson.placement, dict(lead_sources))
            leads.append(lead)
            joined_at = loop.time()
            before = len(seen.seen.get("lead-1-teacher", Watched()).counters)
            await lead.start()
            watched = seen.seen.setdefault("lead-1-teacher", Watched())
            while len(watched.counters) < before + 15:
                assert loop.time() - joined_at < 10, f"join {attempt}: no frames from the lead"
                await asyncio.sleep(0.05)
            print(f"lead join {attempt}: 15 frames read {loop.time() - joined_at:.2f} s later")
            # The lead follows the receiving room too.
            while not lead.all_subscribed():
                assert loop.time() - joined_at < 10, "the lead never subscribed to the room"
                await asyncio.sleep(0.05)
            assert room.subscribers["lead-1"].feed.feed_id == lead.publisher.feed_id
            await lead.stop()
            # The lead's leaving is noticed, and its dead subscription dropped.
            left_at = loop.time()
            while "lead-1" in room.subscribers:
                assert loop.time() - left_at < 3, "the lead's leaving went unnoticed"
                await asyncio.sleep(0.05)
        assert seen.seen["lead-1-mic"].decoded > 0
        assert len(set(seen.seen["lead-1-teacher"].counters)) >= 30
    finally:
        await seen.stop()
        for lead in leads:
            await lead.stop()
        await room.stop()
