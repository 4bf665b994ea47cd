"""``classroom-controller data export|erase``: a teacher's or a class's lessons and
recordings, exported as JSON or erased from storage and catalogue with an audit row."""

from __future__ import annotations

import json
import pathlib
import stat
from datetime import UTC, datetime, timedelta

from helpers import issue_token
from sqlalchemy import select
from typer.testing import CliRunner

from controller.app.cli import app
from controller.common.cli_common import open_db
from controller.db.models import AuditEntry, Deletion, Recording, Teacher
from controller.db.session import utcnow
from controller.lessons.scheduling import schedule_lesson

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _seed(state: pathlib.Path) -> tuple[str, str]:
    """Lesson 1: 李明 teaches from a to b. Lesson 2: someone else teaches from b to a."""
    for cid in ("a", "b"):
        issue_token(state, cid)
    db = open_db(state)
    storage = state / "storage"
    with db() as s:
        s.add(Teacher(id="t-li", name="李明", school_id=""))
        s.commit()
        one = schedule_lesson(s, "a", ["b"], T0, T0 + timedelta(minutes=40))
        one.teacher_id = "t-li"
        two = schedule_lesson(s, "b", ["a"], T0 + timedelta(hours=1), T0 + timedelta(hours=2))
        two.teacher_id = "t-wang"
        for lesson in (one, two):
            for cid in ("a", "b"):
                key = f"lessons/{lesson.id}/{cid}/teacher.mp4"
                (storage / key).parent.mkdir(parents=True, exist_ok=True)
                (storage / key).write_bytes(b"video of " + cid.encode())
                s.add(
                    Recording(
                        lesson_id=lesson.id,
                        classroom_id=cid,
                        track="teacher",
                        kind="video",
                        path=key,
                        codec="h264",
                        duration_s=2400.0,
                        segments=1,
                        sha256="a" * 64,
                        created_at=utcnow(),
                    )
                )
        s.commit()
        return one.id, two.id


def test_export_a_teacher_and_a_classroom(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    one, two = _seed(state)
    runner = CliRunner()
    done = runner.invoke(app, ["data", "export", "--teacher", "李明", "--state-dir", str(state)])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert doc["subject"] == "teacher:李明"
    assert [x["id"] for x in doc["lessons"]] == [one]
    assert [r["classroom"] for r in doc["lessons"][0]["recordings"]] == ["a"]  # where filmed

    out = tmp_path / "export.json"
    args = ["data", "export", "--classroom", "b", "--out", str(out), "--state-dir", str(state)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text())
    assert [x["id"] for x in doc["lessons"]] == [one, two]
    assert {r["classroom"] for x in doc["lessons"] for r in x["recordings"]} == {"b"}

    both = runner.invoke(
        app, ["data", "export", "--teacher", "x", "--classroom", "b", "--state-dir", str(state)]
    )
    assert both.exit_code == 2 and "exactly one" in both.output
    nobody = runner.invoke(
        app, ["data", "export", "--teacher", "nobody", "--state-dir", str(state)]
    )
    assert nobody.exit_code == 2 and "no teacher 'nobody'" in nobody.output


def test_erase_a_teacher_then_a_classroom_with_audit(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    one, two = _seed(state)
    storage = state / "storage" / "lessons"
    runner = CliRunner()
    args = [
        "data",
        "erase",
        "--teacher",
        "t-li",
        "--actor",
        "admin.zhao",
        "--state-dir",
        str(state),
    ]
    done = runner.invoke(app, [*args, "--reason", "teacher asked (ticket 42)"])
    assert done.exit_code == 0, done.output
    assert not (storage / one / "a").exists()  # where 李明 was filmed
    assert (storage / one / "b" / "teacher.mp4").exists()
    assert (storage / two / "a" / "teacher.mp4").exists()

    args = ["data", "erase", "--classroom", "b", "--actor", "admin.zhao", "--state-dir", str(state)]
    done = runner.invoke(app, [*args, "--reason", "class graduated"])
    assert done.exit_code == 0, done.output
    assert not (storage / one / "b").exists() and not (storage / two / "b").exists()
    assert (storage / two / "a" / "teacher.mp4").exists()

    with open_db(state)() as s:
        left = [(r.lesson_id, r.classroom_id) for r in s.scalars(select(Recording))]
        assert left == [(two, "a")]
        deleted = {(d.lesson_id, d.classroom_id, d.actor) for d in s.scalars(select(Deletion))}
        assert deleted == {
            (one, "a", "admin.zhao"),
            (one, "b", "admin.zhao"),
            (two, "b", "admin.zhao"),
        }
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "personal_data.erase")
        ).all()
        assert [(a.username, a.target) for a in audit] == [
            ("admin.zhao", "teacher:t-li"),
            ("admin.zhao", "classroom:b"),
        ]
        assert audit[0].detail["reason"] == "teacher asked (ticket 42)"
        assert audit[0].detail["lessons"] == [one]
