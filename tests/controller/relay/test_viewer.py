"""Console viewers (patrol) on a lesson's relay: codec choice, keyframes, errors, close."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from controller.relay.room import FeedRef, LessonRelay, SignallingError


async def _browser_like_offer(kinds: list[str]) -> tuple[RTCPeerConnection, str]:
    """An offer with recvonly sections and aiortc's default codec order (VP8 first, as a
    browser's)."""
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def _video_codecs(sdp: str) -> list[str]:
    video = sdp.split("m=video", 1)[1].split("m=audio", 1)[0]
    return [line.split(" ", 1)[1].split("/")[0] for line in video.splitlines() if "rtpmap" in line]


async def test_viewer_answer_selects_h264_and_asks_for_a_keyframe() -> None:
    relay = LessonRelay("L1")
    requests: list[int] = []

    def request() -> bool:
        requests.append(1)
        return True

    relay.feed("lead", "teacher", "video").attach_publisher(request)
    relay.feed("lead", "mic", "audio")
    browser, offer = await _browser_like_offer(["video", "audio"])
    assert _video_codecs(offer)[0] == "VP8"
    try:
        answer = await relay.answer_viewer(
            "v1", offer, [FeedRef("lead", "teacher", "video"), FeedRef("lead", "mic", "audio")]
        )
        assert set(_video_codecs(answer)) <= {"H264", "rtx"} and "H264" in _video_codecs(answer)
        assert "opus" in answer.split("m=audio", 1)[1]
        assert requests == [1]  # the new viewer starts on a fresh keyframe
        assert relay.viewers == ["v1"]
        assert {f.track: f.subscribers for f in relay.feeds} == {"teacher": 1, "mic": 1}
        assert await relay.close_viewer("v1") and relay.viewers == []
        assert {f.track: f.subscribers for f in relay.feeds} == {"teacher": 0, "mic": 0}
        assert not await relay.close_viewer("v1")
    finally:
        await browser.close()
        await relay.close()


async def test_viewer_errors_name_the_problem() -> None:
    relay = LessonRelay("L1")
    relay.feed("lead", "teacher", "video")
    browser, offer = await _browser_like_offer(["video"])
    try:
        with pytest.raises(SignallingError, match=r"no feed lead/panel.*lead/teacher"):
            await relay.answer_viewer("v", offer, [FeedRef("lead", "panel", "video")])
        with pytest.raises(SignallingError, match="is video, asked for as audio"):
            await relay.answer_viewer("v", offer, [FeedRef("lead", "teacher", "audio")])
        with pytest.raises(SignallingError, match="empty"):
            await relay.answer_viewer("v", offer, [])
        two = [FeedRef("lead", "teacher", "video")] * 2
        with pytest.raises(SignallingError, match=r"1 media sections .* 'feeds' lists 2"):
            await relay.answer_viewer("v", offer, two)
        assert relay.viewers == [] and relay.feeds[0].subscribers == 0
    finally:
        await browser.close()
        await relay.close()


async def test_closing_the_relay_closes_its_viewers() -> None:
    relay = LessonRelay("L1")
    relay.feed("lead", "teacher", "video")
    browser, offer = await _browser_like_offer(["video"])
    try:
        await relay.answer_viewer("v1", offer, [FeedRef("lead", "teacher", "video")])
        await relay.close()
        assert relay.viewers == []
    finally:
        await browser.close()
