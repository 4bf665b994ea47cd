"""bench-recording: how fast recordings are stitched and uploaded.

Stitch: a 45-minute 1080p30 track at 4 Mbps with its Opus microphone, written by the
agent's own SegmentWriter as 10-second fMP4 segments, is stitched by the controller's
stitch() — a remux — and, as a reference in the same run, by ffmpeg's concat demuxer
with stream copy. The figure is lesson seconds per wall second (× real time).

Upload: one recording file goes through the agent's uploader (journal, presigned
multipart parts straight to S3, storage reading it back to confirm its SHA-256) to a
real S3 server (moto, its own process, on loopback), and the same file through plain
boto3 ``upload_file`` to the same server. The figure is our throughput over boto3's.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import av
import boto3
import numpy as np
from boto3.s3.transfer import TransferConfig

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib.s3_server import s3_server

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.recordings import upload_tokens
from controller.recordings.uploads import UploadService
from controller.storage.s3 import S3Location, S3Storage
from controller.storage.stitch import stitch
from controller.tls.ca import ensure_server_certificate
from controller.tls.server import server_context
from edge_agent.media.encoders import AudioEncoder, VideoEncoder
from edge_agent.recording.segments import SegmentWriter
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader
from protocols.media.encoded_frame import EncodedFrame
from protocols.tls import pinned_client_context

W, H, FPS, BITRATE = 1920, 1080, 30, 4_000_000
CLIP_S = 10


def encode_clip() -> tuple[list[EncodedFrame], list[EncodedFrame]]:
    """Ten seconds of moving 1080p30 video and speech-band audio, encoded once."""
    enc = VideoEncoder(W, H, FPS, BITRATE, preset="ultrafast", gop_seconds=2.0)
    video: list[EncodedFrame] = []
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(FPS * CLIP_S):
        img = ((xx + 6 * i) % 256).astype(np.uint8)
        rgb = np.stack([img, ((yy + 3 * i) % 256).astype(np.uint8), 255 - img], axis=-1)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * 3000
        video += enc.encode(frame, 0.0, force_keyframe=(i % (2 * FPS) == 0))
    aenc = AudioEncoder(48000)
    audio: list[EncodedFrame] = []
    t = np.arange(960) / 48000
    for i in range(50 * CLIP_S):
        pcm = (8000 * np.sin(2 * np.pi * 440 * (t + i * 0.02))).astype(np.int16)
        aframe = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        aframe.sample_rate = 48000
        aframe.pts = i * 960
        audio += aenc.encode(aframe, 0.0)
    return video, audio


def write_segments(directory: pathlib.Path, minutes: float) -> list[pathlib.Path]:
    """A ``minutes`` long track as 10-second segments.

    The agent's SegmentWriter writes one 10-second segment (video with its microphone).
    Every segment file starts its own clock at 0 and takes its place on the lesson
    timeline from the manifest, so the remaining segments are byte copies of it.
    """
    video, audio = encode_clip()
    writer = SegmentWriter(directory, "teacher", "video", 10.0, W, H, with_audio=True, fps=FPS)
    ai = 0
    for frame in video:
        writer.write(frame)
        while ai < len(audio) and audio[ai].pts * 90000 // 48000 <= frame.pts:
            writer.write(audio[ai])
            ai += 1
    [first] = [s.path for s in writer.close()]
    paths = [first]
    for n in range(2, int(minutes * 60 / CLIP_S) + 1):
        copy = directory / f"teacher-{n:05d}.mp4"
        shutil.copyfile(first, copy)
        paths.append(copy)
    return paths


def bench_stitch(minutes: float, work: pathlib.Path) -> dict[str, Any]:
    seg_dir = work / "segments"
    t0 = time.perf_counter()
    segments = write_segments(seg_dir, minutes)
    made = time.perf_counter() - t0
    seconds = minutes * 60
    t0 = time.perf_counter()
    result = stitch(segments, work / "ours.mp4", [i * 10.0 for i in range(len(segments))])
    ours = time.perf_counter() - t0
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in segments))
    t0 = time.perf_counter()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            str(work / "ffmpeg.mp4"),
        ],
        check=True,
    )
    ref = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in segments)
    return {
        "stitch_minutes": minutes,
        "stitch_segments": len(segments),
        "stitch_bytes": size,
        "stitch_duration_s": round(result.duration_s, 2),
        "stitch_s": round(ours, 2),
        "stitch_x_realtime": round(seconds / ours, 1),
        "ffmpeg_concat_s": round(ref, 2),
        "ffmpeg_x_realtime": round(seconds / ref, 1),
        "stitch_vs_ffmpeg": round(ref / ours, 2),
        "segments_written_s": round(made, 1),
    }


async def ours_upload(endpoint: str, path: pathlib.Path, work: pathlib.Path) -> tuple[float, float]:
    """Seconds until storage completed the upload, and until it confirmed the SHA-256
    by reading the object back, through the agent's uploader."""
    url = f"sqlite:///{work / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(work)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    with db() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
        lesson = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=45))
        upload_token = upload_tokens.issue(s, "a")
    storage = S3Storage(S3Location("classbridge-bench", "ours", endpoint))
    storage.ensure_bucket()
    read_back_at: list[float] = []
    read_back = storage._hash

    def timed_read_back(key: str) -> Any:
        read_back_at.append(time.perf_counter())  # storage has completed the upload
        return read_back(key)

    storage._hash = timed_read_back  # type: ignore[method-assign]
    http = HttpApi(db, UploadService(db, storage, lambda lesson, room: None), keys, lambda: [])
    # HTTPS with a county CA, as a controller serves; parts go to S3 directly.
    tls = ensure_server_certificate(work / "controller", ["127.0.0.1"])
    await http.start("127.0.0.1", 0, tls=server_context(tls))
    journal = UploadJournal(work / "uploads.sqlite3")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    creds = (f"https://127.0.0.1:{http.port}", upload_token)
    uploader = Uploader(
        journal, "a", lambda: creds, controller_tls=pinned_client_context(tls.trust_pem)
    )
    start = time.perf_counter()
    journal.enqueue(lesson.id, "teacher/teacher-00001.mp4", path, path.stat().st_size, sha)
    await uploader.start()
    try:
        while journal.pending():
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        summary = journal.summary()
        assert "verified" in summary, summary
    finally:
        await uploader.stop()
        await http.stop()
        journal.close()
    return read_back_at[0] - start, elapsed


def boto3_upload(endpoint: str, path: pathlib.Path) -> float:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="classbridge-bench")
    start = time.perf_counter()
    s3.upload_file(str(path), "classbridge-bench", "boto3/file.mp4", Config=TransferConfig())
    return time.perf_counter() - start


def bench_upload(upload_mb: int, work: pathlib.Path, rounds: int = 5) -> dict[str, Any]:
    path = work / "upload.bin"
    with open(path, "wb") as fh:
        fh.write(os.urandom(upload_mb * 1024 * 1024))
    ours: list[float] = []
    verified: list[float] = []
    ref: list[float] = []
    # A fresh server for every upload: moto keeps objects in memory and slows as they
    # pile up, so each measurement starts from the same state. Rounds alternate.
    for r in range(rounds):
        with s3_server() as server:
            ref.append(boto3_upload(server.endpoint, path))
        with s3_server() as server:
            sub = work / f"ours-{r}"
            sub.mkdir()
            stored, confirmed = asyncio.run(ours_upload(server.endpoint, path, sub))
            ours.append(stored)
            verified.append(confirmed)
    mb = upload_mb * 1024 * 1024 / 1e6
    best_ours, best_ref, best_verified = min(ours), min(ref), min(verified)
    return {
        "upload_verified_s": round(best_verified, 2),
        "upload_verified_vs_boto3": round(best_ref / best_verified, 3),
        "upload_mb": upload_mb,
        "upload_ours_s": round(best_ours, 2),
        "upload_boto3_s": round(best_ref, 2),
        "upload_ours_mb_s": round(mb / best_ours, 1),
        "upload_boto3_mb_s": round(mb / best_ref, 1),
        "upload_vs_boto3": round(best_ref / best_ours, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--minutes", type=float, default=45.0, help="stitched track length")
    parser.add_argument("--upload-mb", type=int, default=256, help="uploaded file size")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("bench-recording: ffmpeg is missing; scripts/bootstrap installs it")
    work = pathlib.Path(tempfile.mkdtemp(prefix="cb-bench-rec-"))
    try:
        figures = {**bench_stitch(args.minutes, work), **bench_upload(args.upload_mb, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"stitch {figures['stitch_minutes']:g} min 1080p ({figures['stitch_segments']} segments,"
        f" {figures['stitch_bytes'] / 1e9:.2f} GB): {figures['stitch_s']} s = "
        f"{figures['stitch_x_realtime']}× real time "
        f"(ffmpeg concat remux {figures['ffmpeg_concat_s']} s = "
        f"{figures['ffmpeg_x_realtime']}×; ours/ffmpeg speed {figures['stitch_vs_ffmpeg']})"
    )
    print(
        f"upload {figures['upload_mb']} MB to S3 (moto on loopback, best of 5): ours "
        f"{figures['upload_ours_mb_s']} MB/s to a completed upload, boto3 upload_file "
        f"{figures['upload_boto3_mb_s']} MB/s; ratio {figures['upload_vs_boto3']}. "
        f"With storage reading it back to confirm the SHA-256: "
        f"{figures['upload_verified_s']} s, ratio {figures['upload_verified_vs_boto3']}"
    )
    if args.json:
        print(json.dumps(figures))


_unused = fractions
if __name__ == "__main__":
    main()
