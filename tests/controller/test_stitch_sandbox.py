"""Agent-supplied segments are remuxed in a sandboxed child: a good stitch works, a
malformed segment is left out as a gap and named, a hanging or greedy stitch is killed, and the
controller process itself never opens the media."""

from __future__ import annotations

import json
import os
import pathlib
import threading
import time

import psutil
import pytest

from controller.storage.errors import StitchError
from controller.storage.sandbox import SandboxLimits, stitch_sandboxed
from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media.encoders import VideoEncoder
from edge_agent.recording.segments import SegmentWriter


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[pathlib.Path]:
    """Two real 2 s H.264 segments."""
    where = tmp_path_factory.mktemp("segs")
    writer = SegmentWriter(where, "teacher", "video", segment_seconds=2, width=320, height=240)
    camera = SyntheticCamera(320, 240, 30, "t")
    encoder = VideoEncoder(320, 240, 30, 200_000, preset="ultrafast", gop_seconds=1)
    for i in range(120):
        for frame in encoder.encode(camera.frame(i, 0), 0):
            writer.write(frame)
    return [s.path for s in writer.close()]


def test_a_good_stitch_runs_in_a_child(
    segments: list[pathlib.Path], tmp_path: pathlib.Path
) -> None:
    opened_before = set(os.listdir("/proc/self/fd"))
    result = stitch_sandboxed(segments, tmp_path / "teacher.mp4", [0.0, 2.0])
    assert result.codec == "h264" and result.frames == 120
    assert result.duration_s == pytest.approx(4.0, abs=0.1)
    assert (tmp_path / "teacher.mp4").stat().st_size > 1000
    assert set(os.listdir("/proc/self/fd")) <= opened_before | {"3", "4", "5"}


def test_a_malformed_segment_is_left_out_as_a_gap_and_named(
    segments: list[pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """One damaged file in the middle of a track costs its own seconds, not the lesson's
    recording: the rest is stitched, the gap stays where it was, and the file is named."""
    bad = tmp_path / "teacher-00002.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4096))
    result = stitch_sandboxed(
        [segments[0], bad, segments[1]], tmp_path / "out.mp4", [0.0, 2.0, 4.0]
    )
    assert result.frames == 120
    assert result.duration_s == pytest.approx(6.0, abs=0.1)  # 2-4 s is the gap
    [why] = result.skipped
    assert why.startswith("teacher-00002.mp4: not a readable MP4 segment"), why
    assert not (tmp_path / "out.mp4.part").exists()


def test_a_track_with_no_readable_segment_fails_naming_them(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "teacher-00002.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4096))
    with pytest.raises(StitchError, match=r"no readable segment among 1: teacher-00002\.mp4"):
        stitch_sandboxed([bad], tmp_path / "out.mp4", [0.0])
    assert not (tmp_path / "out.mp4").exists()
    assert not (tmp_path / "out.mp4.part").exists()


def test_a_stitch_that_hangs_is_killed_and_ran_confined(
    segments: list[pathlib.Path], tmp_path: pathlib.Path
) -> None:
    # A FIFO with no writer: the demuxer blocks in open() for ever, as on a stalled input.
    fifo = tmp_path / "teacher-00003.mp4"
    os.mkfifo(fifo)
    os.environ["CLASSBRIDGE_SECRET_FOR_TEST"] = "must not reach the child"
    seen: dict[str, object] = {}

    def inspect_child() -> None:
        """While the child hangs, look at what it was given (from /proc)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                try:
                    if "stitch_child" not in " ".join(child.cmdline()):
                        continue
                    limits = pathlib.Path(f"/proc/{child.pid}/limits").read_text()
                    seen.update(
                        environ=child.environ(),
                        fds=len(child.open_files()) + len(os.listdir(f"/proc/{child.pid}/fd")),
                        own_session=os.getsid(child.pid) == child.pid,
                        limits=limits,
                    )
                    if "Max open files            256" in limits:  # the last one set
                        return
                except (psutil.Error, OSError):
                    continue
            time.sleep(0.05)

    watcher = threading.Thread(target=inspect_child)
    watcher.start()
    started = time.monotonic()
    try:
        with pytest.raises(StitchError, match=r"took over 3 s; the process was killed"):
            stitch_sandboxed(
                [segments[0], fifo], tmp_path / "out.mp4", [0.0, 2.0], SandboxLimits(timeout_s=3)
            )
    finally:
        del os.environ["CLASSBRIDGE_SECRET_FOR_TEST"]
        watcher.join()
    assert time.monotonic() - started < 10
    assert seen, "never saw the stitching child"
    assert seen["environ"] == {}
    assert seen["own_session"] is True
    limits = str(seen["limits"])
    assert "Max core file size        0" in limits
    assert "Max cpu time              600" in limits
    assert "Max address space         1610612736" in limits
    assert not [
        c
        for c in psutil.Process().children(recursive=True)
        if "stitch_child" in " ".join(c.cmdline())
    ]


def test_the_child_is_held_to_its_memory_limit(
    segments: list[pathlib.Path], tmp_path: pathlib.Path
) -> None:
    # Too little address space even to load FFmpeg: the child fails, the caller is told.
    with pytest.raises(StitchError, match=r"out.mp4|MemoryError"):
        stitch_sandboxed(
            segments, tmp_path / "out.mp4", None, SandboxLimits(address_space=64 * 1024**2)
        )


def test_a_lesson_with_a_damaged_segment_is_still_catalogued_and_says_so(
    segments: list[pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """Through the controller's own path (a manifest accepted from storage): the track's
    recording is made from what can be read, and the lesson's log names what could not."""
    import hashlib
    import shutil
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from controller.agents.keys import ServerKeys
    from controller.agents.registry import add_classroom
    from controller.db.models import LessonEvent, Recording
    from controller.db.session import make_engine, migrate, sessions
    from controller.lessons.scheduling import schedule_lesson
    from controller.recordings.intake import accept_manifest, record_segment
    from controller.storage.local import LocalStorage

    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db = sessions(make_engine(url))
    storage = LocalStorage(tmp_path / "storage")
    keys = ServerKeys.load_or_create(tmp_path)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    bad = tmp_path / "teacher-00002.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(4096))
    files = [segments[0], bad, segments[1]]
    entries = []
    with db() as s:
        for cid in ("a", "b"):
            add_classroom(s, cid, cid, "", keys.public)
        lid = schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(seconds=6)).id
        for n, path in enumerate(files, 1):
            name = f"teacher-{n:05d}.mp4"
            key = f"lessons/{lid}/a/teacher/{name}"
            (storage.root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, storage.root / key)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            size = path.stat().st_size
            record_segment(s, lid, "a", "teacher", name, key, sha, size)
            entries.append(
                {
                    "name": name,
                    "seq": n,
                    "start_s": 2.0 * (n - 1),
                    "end_s": 2.0 * n,
                    "frames": 60,
                    "bytes": size,
                    "sha256": sha,
                }
            )
    manifest = {
        "lesson_id": lid,
        "classroom_id": "a",
        "started_at": 0,
        "ended_at": 6,
        "tracks": [
            {
                "track": "teacher",
                "kind": "video",
                "direction": "send",
                "source_classroom": "a",
                "segments": entries,
            }
        ],
    }
    accept_manifest(db, storage, json.dumps(manifest).encode(), lid, "a")
    with db() as s:
        [rec] = s.scalars(select(Recording)).all()
        assert rec.track == "teacher" and rec.segments == 2
        assert rec.duration_s == pytest.approx(6.0, abs=0.1)
        events = [e.detail for e in s.scalars(select(LessonEvent)).all()]
    assert any("teacher-00002.mp4" in e and "could not be read" in e for e in events), events
