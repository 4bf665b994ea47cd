"""An IP camera (GStreamer's RTSP server) passed through, then pulled mid-lesson.

The camera's H.264 is recorded as it came (no re-encode). Unplugging it is reported as
``lost`` within 5 s; the microphone records on without a gap; the camera's track resumes
by itself within 10 s of the camera's return, and its recording shows the outage as a gap.
"""

from __future__ import annotations

import asyncio
import itertools
import pathlib
import time

import pytest
from helpers import needs

from edge_agent.media.capture_runner import CaptureRunner
from edge_agent.profile import Device, HardwareProfile
from edge_agent.recording.lesson_recorder import LessonRecorder, TrackSpec
from edge_agent.recording.manifest import read_manifest
from edge_agent.sources import build_runner
from tests.peers import rtsp

pytestmark = [
    pytest.mark.e2e,
    needs(rtsp.available(), "GStreamer RTSP server not installed (scripts/bootstrap)"),
]


async def wait_for(predicate: object, timeout: float) -> float:
    """Seconds until ``predicate()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def profile_for(url: str) -> HardwareProfile:
    return HardwareProfile(
        name="rtsp-test",
        devices=[
            rtsp.rtsp_device(url, width=640, height=360, fps=30),
            Device(name="mic", kind="microphone", role="room", driver="synthetic", bitrate=48000),
        ],
    )


async def test_camera_pulled_mid_lesson_is_reported_and_picked_up(tmp_path: pathlib.Path) -> None:
    loop = asyncio.get_running_loop()
    camera = rtsp.RtspCamera(size="640x360")
    camera.plug()
    profile = profile_for(camera.url)
    cam = build_runner(profile.device("teacher"), profile, loop)
    mic = build_runner(profile.device("mic"), profile, loop)
    assert isinstance(cam, CaptureRunner) and cam.spec.passthrough
    recorder = LessonRecorder(tmp_path / "lesson", "L1", "c1", segment_seconds=4.0)
    for runner in (cam, mic):
        recorder.add_track(TrackSpec(runner.name, runner.kind, "send", "c1"))
        runner.bus.subscribe(lambda frame, key=runner.name: recorder.offer(key, frame))
    cam.start()
    mic.start()
    try:
        await wait_for(lambda: cam.state == "ok", 15)
        recorder.start()
        await asyncio.sleep(3)
        camera.unplug()
        detect_s = await wait_for(lambda: cam.state == "lost", 5)
        assert "127.0.0.1" in cam.detail and "retrying" in cam.detail
        assert mic.state == "ok"
        await asyncio.sleep(3)
        frames_while_away = cam.frames
        camera.plug()
        recover_s = await wait_for(lambda: cam.state == "ok", 10)
        await asyncio.sleep(3)
        assert cam.frames > frames_while_away + 30, "camera frames did not resume"
    finally:
        cam.stop()
        mic.stop()
        camera.unplug()
    manifest = read_manifest(recorder.stop())
    print(f"lost detected in {detect_s:.2f} s, recovered in {recover_s:.2f} s")

    tracks = {t.track: t for t in manifest.tracks}
    sound = sorted(tracks["mic"].segments, key=lambda s: s.start_s)
    for before, after in itertools.pairwise(sound):
        assert after.start_s - before.end_s < 0.1, f"microphone gap at {before.end_s:.2f} s"
    assert sound[-1].end_s - sound[0].start_s > 10

    video = sorted(tracks["teacher"].segments, key=lambda s: s.start_s)
    gaps = [b.start_s - a.end_s for a, b in itertools.pairwise(video)]
    assert max(gaps) > 2.5, f"the outage should show as a gap in the camera track: {gaps}"
    assert video[-1].end_s > video[0].start_s + 8
    assert cam.opened >= 2
