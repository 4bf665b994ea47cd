"""bench-edge: what a recording classroom's devices cost the edge agent.

Passthrough: N IP cameras (GStreamer's RTSP server, 1080p25 x264, one process each) are
opened by the agent's CaptureRunner, which passes their H.264 through (no decode, no
re-encode) to a subscriber. The figure is this process's CPU time per camera over the
measuring window, in percent of one core.

Encode: 300 frames of 720p (the synthetic teacher camera's) are encoded by the agent's
VideoEncoder (libx264 through PyAV, the profile's settings) and, as the reference in the
same run, by bare libx264 in the ffmpeg CLI with the same settings on the same raw frames.
The figure is our CPU seconds over ffmpeg's; per-stream CPU at 30 fps is printed too.

Supervision: a camera is stopped while streaming (the RTSP server killed) and started
again; the figures are seconds from the stop until the runner says ``lost``, and from the
restart until it is ``ok`` again with frames flowing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from peers.rtsp import RtspCamera, rtsp_device  # noqa: E402

from edge_agent.devices.synthetic import SyntheticCamera  # noqa: E402
from edge_agent.media.bus import FrameBus  # noqa: E402
from edge_agent.media.capture_runner import CaptureRunner  # noqa: E402
from edge_agent.media.encoders import VideoEncoder  # noqa: E402
from edge_agent.sources import capture_spec  # noqa: E402

FRAMES = 300


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def passthrough(cameras: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    peers = [RtspCamera(size="1920x1080", fps=25) for _ in range(cameras)]
    runners = []
    try:
        for peer in peers:
            peer.plug()
            runner = CaptureRunner(
                "cam", "video", capture_spec(rtsp_device(peer.url)), FrameBus("cam", "video"), loop
            )
            runner.bus.subscribe(lambda frame: None)
            runner.start()
            runners.append(runner)
        deadline = time.monotonic() + 20
        while any(r.state != "ok" for r in runners):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "cameras did not come up: " + "; ".join(r.detail for r in runners)
                )
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        frames0 = [r.frames for r in runners]
        c0, t0 = cpu_s(), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = cpu_s(), time.monotonic()
        fps = sum(r.frames - f for r, f in zip(runners, frames0, strict=True)) / (t1 - t0)
        return {
            "passthrough_cpu_pct": round(100 * (c1 - c0) / (t1 - t0) / cameras, 2),
            "passthrough_fps_per_camera": round(fps / cameras, 1),
        }
    finally:
        for runner in runners:
            runner.stop()
        for peer in peers:
            peer.unplug()


def encode_ratio() -> dict[str, float]:
    camera = SyntheticCamera(1280, 720, 30, "bench")
    frames = [camera.frame(i, 1_700_000_000_000 + i * 33) for i in range(FRAMES)]
    encoder = VideoEncoder(1280, 720, 30, 2_000_000, preset="ultrafast")
    c0 = cpu_s()
    for i, frame in enumerate(frames):
        encoder.encode(frame, 0.0, i == 0)
    ours = cpu_s() - c0
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "frames.yuv"
        with raw.open("wb") as fh:
            for frame in frames:
                fh.write(frame.to_ndarray().tobytes())
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                "-s", "1280x720", "-r", "30", "-i", str(raw), "-threads", "1",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-profile:v", "baseline", "-b:v", "2000k",
                "-x264-params",
                "repeat-headers=1:annexb=1:vbv-maxrate=2000:vbv-bufsize=1000:keyint=60:"
                "min-keyint=60:scenecut=0:force-cfr=1",
                "-f", "null", "-",
            ],
            check=True,
        )  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reference = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "encode_ratio_vs_x264": round(ours / reference, 2),
        "encode_cpu_pct_720p30": round(100 * ours / FRAMES * 30, 1),
        "x264_cpu_pct_720p30": round(100 * reference / FRAMES * 30, 1),
    }


async def supervision() -> dict[str, float]:
    loop = asyncio.get_running_loop()
    peer = RtspCamera(size="1280x720", fps=30)
    peer.plug()
    spec = capture_spec(rtsp_device(peer.url))
    runner = CaptureRunner("cam", "video", spec, FrameBus("cam", "video"), loop)
    runner.start()
    try:
        while runner.state != "ok":
            await asyncio.sleep(0.02)
        await asyncio.sleep(2)
        peer.unplug()
        stopped = time.monotonic()
        while runner.state != "lost":
            await asyncio.sleep(0.01)
        lost = time.monotonic() - stopped
        await asyncio.sleep(3)
        peer.plug()
        back = time.monotonic()
        frames = runner.frames
        while runner.state != "ok" or runner.frames <= frames:
            await asyncio.sleep(0.01)
        recovered = time.monotonic() - back
    finally:
        runner.stop()
        peer.unplug()
    return {"device_lost_detect_s": round(lost, 2), "device_recover_s": round(recovered, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description="edge agent device costs")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    figures: dict[str, float] = {}
    figures.update(asyncio.run(passthrough(args.cameras, args.seconds)))
    figures.update(encode_ratio())
    figures.update(asyncio.run(supervision()))
    print(
        f"passthrough: {figures['passthrough_cpu_pct']}% of one core per 1080p25 camera "
        f"({figures['passthrough_fps_per_camera']} fps each, {args.cameras} cameras)"
    )
    print(
        f"encode 720p30: ours {figures['encode_cpu_pct_720p30']}% vs bare libx264 "
        f"{figures['x264_cpu_pct_720p30']}% of a core: ratio {figures['encode_ratio_vs_x264']}"
    )
    print(
        f"camera pulled: lost after {figures['device_lost_detect_s']} s, back "
        f"{figures['device_recover_s']} s after its return"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
