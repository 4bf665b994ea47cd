"""The director's programme as a real agent makes it: recorded (movie mode) with the
room's sound, and pushed over RTMP to a real nginx-rtmp server from the same packets."""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import subprocess
from collections.abc import Callable

import av
import pytest
import zmq
from helpers import needs

from edge_agent import daemon as daemon_mod
from edge_agent.daemon import AgentDaemon
from edge_agent.director.programme import PROFILE_TARGET
from edge_agent.identity import Identity
from edge_agent.manual_record import Request
from edge_agent.profile import DirectorSettings, LoadedProfile, load_profile
from edge_agent.recording.manifest import read_manifest
from protocols.messages import PushTarget
from tests.peers import nginx_rtmp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
ROOT = pathlib.Path(__file__).parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _agent(state: pathlib.Path, director: DirectorSettings) -> AgentDaemon:
    server_pub, _ = zmq.curve_keypair()
    pub, sec = zmq.curve_keypair()
    identity = Identity(
        "c1", f"tcp://127.0.0.1:{_free_port()}", server_pub.decode(), pub.decode(), sec.decode()
    )
    loaded = load_profile(ROOT / "hardware_profiles" / "synthetic.toml")
    profile = loaded.profile.model_copy(update={"director": director})
    return AgentDaemon(state, identity, LoadedProfile(path="x", digest="0", profile=profile))


@needs(nginx_rtmp.available(), nginx_rtmp.why_unavailable())
async def test_movie_mode_records_the_programme_and_pushes_it_live(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_mod, "READY_LINK_WAIT_S", 0.2)
    with nginx_rtmp.NginxRtmp(directory=tmp_path / "nginx") as server:
        settings = DirectorSettings(
            mode="both", width=960, height=540, fps=25, bitrate=1_500_000, push_url=server.url()
        )
        agent = _agent(tmp_path / "state", settings)
        await agent.start()
        try:
            ans = await agent.lessons.record_by_hand(Request("r1", "start", 0.0))
            assert ans.ok, ans.message
            await asyncio.sleep(5.0)
            programme = agent.programme_desk.programmes[str(ans.lesson_id)]
            assert programme.director.shot is not None  # the director is cutting
            pushes = agent._heartbeat(1).pushes  # what the controller is told
            assert [(p.lesson_id, p.name, p.state) for p in pushes] == [
                (str(ans.lesson_id), PROFILE_TARGET, "live")
            ], pushes
            assert pushes[0].where == f"rtmp://127.0.0.1:{server.port}/{nginx_rtmp.APPLICATION}/***"
            stopped = await agent.lessons.stop_by_hand(Request("r2", "stop", 0.0))
            assert stopped.ok, stopped.message
        finally:
            await agent.stop()
        flv = server.recording()
    lesson_dir = tmp_path / "state" / "recordings" / str(ans.lesson_id)
    manifest = read_manifest(lesson_dir / "manifest.json")
    tracks = {t.track: t for t in manifest.tracks}
    # movie: the programme with the room's sound inside; resource: each source on its own
    assert tracks["programme"].muxed == ["mic"] and tracks["programme"].segments
    assert {"teacher", "student", "panel"} <= set(tracks)
    first = lesson_dir / "programme" / tracks["programme"].segments[0].name
    with av.open(str(first)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (960, 540)
        assert container.streams.audio, "the programme carries the microphone"
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(flv)],
        capture_output=True,
        text=True,
        check=True,
    )
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 960
    assert streams["audio"]["codec_name"] == "aac"


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@needs(nginx_rtmp.available(), nginx_rtmp.why_unavailable())
async def test_the_lessons_own_push_targets_start_and_stop_while_it_runs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A classroom with no push address of its own is sent a lesson's targets (the
    scheduler's live platforms): it pushes to them; a new list mid-lesson stops the push
    taken away and starts the one added, and the programme and the other push carry on."""
    monkeypatch.setattr(daemon_mod, "READY_LINK_WAIT_S", 0.2)
    with (
        nginx_rtmp.NginxRtmp(directory=tmp_path / "a") as a,
        nginx_rtmp.NginxRtmp(directory=tmp_path / "b") as b,
    ):
        agent = _agent(tmp_path / "state", DirectorSettings(width=640, height=360, fps=15))
        await agent.start()
        try:
            ans = await agent.lessons.record_by_hand(Request("r1", "start", 0.0))
            assert ans.ok, ans.message
            lesson = str(ans.lesson_id)
            desk = agent.programme_desk
            assert lesson not in desk.programmes  # resource mode and no push: no programme
            publishing = {n: s for n, s in agent.sources.items() if n in ("teacher", "mic")}

            def states() -> dict[str, str]:
                return {p.name: p.state for p in agent._heartbeat(1).pushes}

            dingtalk = PushTarget(name="钉钉直播", url=a.url("k-dingtalk"))
            wechat = PushTarget(name="微信直播", url=b.url("k-wechat"))
            assert desk.for_lesson(lesson, publishing, lambda: True, [dingtalk]) is not None
            await _until(lambda: states() == {"钉钉直播": "live"}, 20, "the first push live")
            programme = desk.programmes[lesson]
            first = desk.pushes[lesson][("钉钉直播", dingtalk.url)]

            same = desk.for_lesson(lesson, publishing, lambda: True, [dingtalk, wechat])
            assert same is programme
            await _until(
                lambda: states() == {"钉钉直播": "live", "微信直播": "live"}, 20, "both live"
            )
            assert desk.pushes[lesson][("钉钉直播", dingtalk.url)] is first  # not restarted

            desk.for_lesson(lesson, publishing, lambda: True, [wechat])
            await _until(lambda: states() == {"微信直播": "live"}, 20, "the first push stopped")
            await _until(lambda: first.state == "stopped", 10, "the dropped push closed")
            assert "k-dingtalk" not in repr(agent._heartbeat(1).model_dump())  # keys stay home
            stopped = await agent.lessons.stop_by_hand(Request("r2", "stop", 0.0))
            assert stopped.ok, stopped.message
            assert desk.statuses() == [] and lesson not in desk.programmes
        finally:
            await agent.stop()
        for server, key in ((a, "k-dingtalk"), (b, "k-wechat")):
            flv = server.recording(key)
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(flv)],
                capture_output=True,
                text=True,
                check=True,
            )
            kinds = {st["codec_type"] for st in json.loads(probe.stdout)["streams"]}
            assert kinds == {"video", "audio"}, (server.url(key), kinds)
