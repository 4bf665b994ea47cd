"""Patrol viewers on a real Janus (``controller.media_plane.viewers``): a classroom
publishes into a lesson's room, and the controller's viewer subscribes to its camera for
an aiortc "browser"; every way a viewer ends (closed, a refused answer, the instance
killed) is reported once, and leaves no Janus session behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest
from agent_janus_fixtures import camera, microphone
from aiortc import RTCPeerConnection, RTCSessionDescription
from benchlib.janus import JanusServer
from media_plane_fixtures import StartJanus, instance, plane_config

from controller.media_plane.plane import MediaPlane
from controller.media_plane.rooms import RoomPlacement
from controller.media_plane.viewers import (
    AlreadyAnswered,
    AnswerRefused,
    JanusViewer,
    Stream,
    probe_streams,
)
from edge_agent.media_plane.janus_session import JanusSession
from edge_agent.media_plane.publisher import JanusPublisher
from protocols.media import aiortc_seam
from protocols.messages import JanusPlacement

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]


class Room:
    """A lesson's room with ``lead-1`` publishing its teacher camera and microphone."""

    def __init__(self, server: JanusServer, plane: MediaPlane, placed: RoomPlacement) -> None:
        self.server, self.plane, self.placed = server, plane, placed
        assert placed.api_url is not None and placed.room is not None
        self.url, self.room, self.pin = placed.api_url, placed.room, placed.pin

    async def sessions(self) -> set[int]:
        answer = await self.plane.clients["a"].admin("list_sessions")
        return set(answer.get("sessions") or [])


@pytest.fixture
async def room(start_janus: StartJanus) -> AsyncIterator[Room]:
    """A real Janus, a room made by the controller's media plane, and a publisher in it."""
    gather = aioice.ice.get_host_addresses
    server = await start_janus()
    aiortc_seam.pin_host_addresses([server.host_address])
    plane = MediaPlane(plane_config({"a": instance(server)}))
    await plane.start()
    placed = await plane.rooms.open("lesson-1")
    sources = {"teacher": camera("teacher"), "mic": microphone("mic")}
    for source in sources.values():
        source.start()
    placement = JanusPlacement(api_url=placed.api_url, room=placed.room, pin=placed.pin)
    session = JanusSession(placement.api_url)
    await session.start()
    publisher = JanusPublisher(session, placement, "lead-1", sources, ["teacher", "mic"])
    try:
        await publisher.start()
        yield Room(server, plane, placed)
    finally:
        await publisher.stop()
        await session.stop()
        for source in sources.values():
            source.stop()
        await plane.stop()
        aioice.ice.get_host_addresses = gather


async def _streams(room: Room) -> list[Stream]:
    for _ in range(50):  # a publisher is listed as one once its media is up
        listing = await room.plane.clients["a"].videoroom(
            {"request": "listparticipants", "room": room.room}
        )
        feeds = [int(p["id"]) for p in listing["participants"] if p.get("publisher")]
        if feeds:
            return await probe_streams(room.url, room.room, room.pin, feeds)
        await asyncio.sleep(0.1)
    raise AssertionError("no publisher in the room")


class Ends:
    """Collects the reasons a viewer ended."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


async def _browser_answer(offer: str) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc, pc.localDescription.sdp


async def _until(check: Any, timeout_s: float) -> None:
    for _ in range(int(timeout_s * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s:g} s")


async def test_a_viewer_receives_the_camera_it_asked_for_and_closing_frees_its_session(
    room: Room,
) -> None:
    streams = await _streams(room)
    assert {(s.classroom, s.track, s.kind) for s in streams} == {
        ("lead-1", "teacher", "video"),
        ("lead-1", "mic", "audio"),
    }
    teacher = next(s for s in streams if s.track == "teacher")
    before = await room.sessions()
    ends = Ends()
    viewer = JanusViewer(room.url, room.room, room.pin, [teacher], ends)
    offer, mids = await viewer.offer()
    assert offer.count("m=") == 1 and len(mids) == 1
    assert await room.sessions() - before == {viewer.session_id}
    pc, answer = await _browser_answer(offer)
    try:
        await viewer.answer(answer)
        [transceiver] = [t for t in pc.getTransceivers() if t.mid == mids[0]]
        frame = await asyncio.wait_for(transceiver.receiver.track.recv(), 10)
        assert frame.width == 320  # the lead's camera, decoded here, from Janus
        with pytest.raises(AlreadyAnswered, match="answered already"):
            await viewer.answer(answer)
        await viewer.close("hung up by inspector")
        await viewer.close("twice")
    finally:
        await pc.close()
    assert ends.reasons == ["hung up by inspector"]
    assert await room.sessions() == before


async def test_a_refused_answer_and_a_killed_instance_end_the_viewer(room: Room) -> None:
    teacher = next(s for s in await _streams(room) if s.track == "teacher")
    before = await room.sessions()
    ends = Ends()
    viewer = JanusViewer(room.url, room.room, room.pin, [teacher], ends)
    await viewer.offer()
    bogus = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 0\r\n"
    with pytest.raises(AnswerRefused, match="Janus refused the answer"):
        await viewer.answer(bogus)
    # Refused, the viewer stays open for the caller to close (patrol closes it at once).
    assert ends.reasons == []
    await viewer.close("bad answer")
    assert await room.sessions() == before

    ends = Ends()
    viewer = JanusViewer(room.url, room.room, room.pin, [teacher], ends)
    offer, _ = await viewer.offer()
    pc, answer = await _browser_answer(offer)
    try:
        await viewer.answer(answer)
        room.server.kill()
        await _until(lambda: bool(ends.reasons), 5)
    finally:
        await pc.close()
    assert len(ends.reasons) == 1 and "stopped answering" in ends.reasons[0], ends.reasons
