"""The record start|stop request channel between the CLI and the daemon."""

from __future__ import annotations

import json
import pathlib
import threading

import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.manual_record import (
    REQUEST_NAME,
    Answer,
    answer,
    send_request,
    take_request,
    wait_answer,
)
from protocols.lesson_ids import manual_lesson_id, manual_start


def test_manual_ids_carry_their_start_and_scheduled_ids_do_not() -> None:
    lid = manual_lesson_id(1_795_000_123.7)
    assert len(lid) <= 32 and manual_start(lid) == 1_795_000_123.0
    assert manual_start("3f2a9c0d11e44b7e8d1c2b3a4f5e6d7c") is None
    assert manual_start("m-123-abcdef12") is None


def test_request_answer_round_trip(tmp_path: pathlib.Path) -> None:
    req = send_request(tmp_path, "start")
    got = take_request(tmp_path)
    assert got == req and take_request(tmp_path) is None  # taken once

    def daemon() -> None:
        answer(tmp_path, Answer(req.id, True, "recording", "m-1795000000-abcdef12"))

    threading.Timer(0.2, daemon).start()
    ans = wait_answer(tmp_path, req, 5.0)
    assert ans is not None and ans.ok and ans.lesson_id == "m-1795000000-abcdef12"


def test_a_garbage_request_is_dropped_with_a_reason(tmp_path: pathlib.Path) -> None:
    (tmp_path / REQUEST_NAME).write_text(json.dumps({"id": "x", "action": "explode", "at": 1}))
    with pytest.raises(ValueError, match="not a record request"):
        take_request(tmp_path)
    assert not (tmp_path / REQUEST_NAME).exists()


def test_cli_says_when_no_agent_answers(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(
        app, ["record", "start", "--state-dir", str(tmp_path), "--timeout", "0.5"]
    )
    assert result.exit_code == 1
    assert "did not answer" in result.output and "systemctl status" in result.output


def test_cli_refuses_a_missing_state_dir(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(app, ["record", "stop", "--state-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output
