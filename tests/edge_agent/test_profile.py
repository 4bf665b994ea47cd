"""Hardware profiles: the shipped ones validate; bad ones name file, field, value and fix."""

from __future__ import annotations

import pathlib

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.errors import ProfileError
from edge_agent.profile import load_profile
from edge_agent.uploads.journal import UploadJournal

REPO = pathlib.Path(__file__).resolve().parents[2]
SYNTHETIC = REPO / "hardware_profiles" / "synthetic.toml"


def test_every_shipped_profile_is_valid() -> None:
    for path in (REPO / "hardware_profiles").glob("*.toml"):
        loaded = load_profile(path)
        assert len(loaded.digest) == 64


def test_synthetic_profile_has_the_lesson_sources() -> None:
    profile = load_profile(SYNTHETIC).profile
    roles = {d.role for d in profile.devices}
    assert {"teacher", "student", "content", "room"} <= roles


def _bad(tmp_path: pathlib.Path, old: str, new: str) -> pathlib.Path:
    path = tmp_path / "bad.toml"
    path.write_text(SYNTHETIC.read_text().replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("bitrate = 600_000", "bitrate = 5", "devices[1] (student).bitrate = 5"),
        ('role = "teacher"', 'role = "boss"', "role 'boss' is not valid for a camera; use one of"),
        ('video_codec = "libx264"', 'video_codec = "h265"', "encoder.video_codec = 'h265'"),
        ("width = 1280", "width = 1281", "must be even"),
        ('name = "student"', 'name = "teacher"', "repeated: teacher"),
        ('driver = "synthetic"', 'driver = "webcam"', "devices[0] (teacher).driver = 'webcam'"),
    ],
)
def test_invalid_profile_names_file_field_and_fix(
    tmp_path: pathlib.Path, old: str, new: str, expected: str
) -> None:
    path = _bad(tmp_path, old, new)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_unreadable_and_non_toml_profiles(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ProfileError, match="cannot read hardware profile"):
        load_profile(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_bytes(b"name = \xff")
    with pytest.raises(ProfileError, match="not valid UTF-8 TOML"):
        load_profile(broken)


def test_cli_profile_check(tmp_path: pathlib.Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["profile", "check", str(SYNTHETIC)])
    assert ok.exit_code == 0 and "is valid" in ok.output
    bad = runner.invoke(app, ["profile", "check", str(_bad(tmp_path, "fps = 30", "fps = 0"))])
    assert bad.exit_code == 2 and "fps" in bad.output


def test_cli_run_without_enrolment_says_what_to_do(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--state-dir", str(tmp_path), "--profile", str(SYNTHETIC)]
    )
    assert result.exit_code == 2
    assert "classroom-agent enroll" in result.output


def test_cli_status_before_and_after_enrolment(tmp_path: pathlib.Path) -> None:
    import json
    import time

    from edge_agent.identity import Identity
    from edge_agent.schedule_cache import ScheduleCache
    from protocols.messages import JoinLesson, ScheduleUpdate

    runner = CliRunner()
    result = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "NOT ENROLLED" in result.output
    Identity("city-101", "tcp://10.0.0.1:7700", "k" * 40, "p" * 40, "s" * 40).save(tmp_path)
    now = time.time()
    ScheduleCache(tmp_path).store(
        ScheduleUpdate(
            horizon_s=1,
            lessons=[
                JoinLesson(
                    lesson_id="L1",
                    role="lead",
                    publish=["teacher"],
                    subscribe=[],
                    start_at=now - 60,
                    end_at=now + 600,
                )
            ],
        )
    )
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    seg = tmp_path / "recordings" / "L0" / "teacher" / "teacher-00001.mp4"
    journal.enqueue("L0", "teacher/teacher-00001.mp4", seg, 10, "0" * 64)
    journal.close()
    result = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "city-101" in result.output and "live now" in result.output
    assert "waiting to upload: 1 (L0/teacher/teacher-00001.mp4)" in result.output
    doc = json.loads(runner.invoke(app, ["status", "--json", "--state-dir", str(tmp_path)]).output)
    assert doc["next_lessons"][0]["lesson"] == "L1" and doc["pending_uploads"] == [
        "L0/teacher/teacher-00001.mp4"
    ]


def test_director_settings_are_checked(tmp_path: pathlib.Path) -> None:
    src = (pathlib.Path(__file__).parents[2] / "hardware_profiles" / "synthetic.toml").read_text()
    bad_url = tmp_path / "url.toml"
    bad_url.write_text(src + '\n[director]\nmode = "movie"\npush_url = "http://live.example"\n')
    with pytest.raises(ProfileError, match="push_url"):
        load_profile(bad_url)
    no_teacher = tmp_path / "teacher.toml"
    no_teacher.write_text(
        src.replace('role = "teacher"', 'role = "wide"') + '\n[director]\nmode = "movie"\n'
    )
    with pytest.raises(ProfileError, match="needs a camera with role 'teacher'"):
        load_profile(no_teacher)
