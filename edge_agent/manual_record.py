"""Recording by hand (``classroom-agent record start|stop``), outside the timetable.

The CLI and the daemon share the agent's state directory, so a request is a small JSON
file the CLI writes atomically; the daemon picks it up within a schedule tick, acts on
it and writes an answer carrying the request's id. The CLI waits for that answer.

A manual recording is a lesson of its own, with an id the agent makes
(``m-<start epoch>-<random>``). Its segments and manifest upload like any lesson's; the
controller catalogues it as a ``manual`` recording of this classroom when it first sees
the id.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Literal

from protocols.lesson_ids import manual_lesson_id, manual_start
from protocols.messages import JoinLesson

log = logging.getLogger(__name__)

REQUEST_NAME = "manual-record.request.json"
ANSWER_NAME = "manual-record.answer.json"
MAX_MANUAL_S = 4 * 3600  # a forgotten manual recording stops on its own after this

Action = Literal["start", "stop"]


@dataclass(frozen=True)
class Request:
    """What the technician asked for."""

    id: str
    action: Action
    at: float


@dataclass(frozen=True)
class Answer:
    """What the daemon did about a request."""

    id: str
    ok: bool
    message: str
    lesson_id: str | None = None


def _write_atomic(path: pathlib.Path, doc: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def send_request(state_dir: pathlib.Path, action: Action) -> Request:
    """Leave a request for the daemon (CLI side)."""
    req = Request(secrets.token_hex(8), action, time.time())
    (state_dir / ANSWER_NAME).unlink(missing_ok=True)
    _write_atomic(state_dir / REQUEST_NAME, asdict(req))
    return req


def take_request(state_dir: pathlib.Path) -> Request | None:
    """The pending request, removed from disk (daemon side); a bad file is dropped."""
    path = state_dir / REQUEST_NAME
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    try:
        doc = json.loads(raw)
        action = doc["action"]
        if action not in ("start", "stop"):
            raise ValueError(action)
        return Request(str(doc["id"]), action, float(doc["at"]))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a record request ({err}); ignored") from None


def answer(state_dir: pathlib.Path, ans: Answer) -> None:
    """Answer a request (daemon side)."""
    _write_atomic(state_dir / ANSWER_NAME, asdict(ans))


def wait_answer(state_dir: pathlib.Path, req: Request, timeout: float) -> Answer | None:
    """The daemon's answer to ``req``, or None if none came within ``timeout`` seconds."""
    path = state_dir / ANSWER_NAME
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            doc = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            doc = None
        if doc is not None and doc.get("id") == req.id:
            return Answer(doc["id"], bool(doc["ok"]), str(doc["message"]), doc.get("lesson_id"))
        time.sleep(0.1)
    return None


async def serve(
    state_dir: pathlib.Path,
    start: Callable[[Request], Awaitable[Answer]],
    stop: Callable[[Request], Awaitable[Answer]],
) -> None:
    """Act on a pending request, if any, and answer it (daemon side, once a tick)."""
    try:
        req = take_request(state_dir)
    except ValueError as err:
        log.warning("%s", err)
        return
    if req is None:
        return
    try:
        ans = await (start if req.action == "start" else stop)(req)
    except Exception as err:
        log.exception("record %s failed", req.action)
        ans = Answer(req.id, False, f"record {req.action} failed: {type(err).__name__}: {err}")
    answer(state_dir, ans)


def refuse_start(req: Request, current_lesson: str | None) -> Answer | None:
    """Why a start cannot happen now (something is recording already), or None."""
    if current_lesson is None:
        return None
    if manual_start(current_lesson) is not None:
        why = (
            f"already recording by hand as {current_lesson}; 'classroom-agent record stop' ends it"
        )
    else:
        why = (
            f"scheduled lesson {current_lesson} is in this classroom now and is being "
            "recorded already; nothing to do"
        )
    return Answer(req.id, False, why, current_lesson)


def refuse_stop(req: Request, current_lesson: str | None) -> Answer | None:
    """Why a stop cannot happen (no manual recording is running), or None."""
    if current_lesson is not None and manual_start(current_lesson) is not None:
        return None
    what = (
        f"scheduled lesson {current_lesson} is running and ends on the timetable"
        if current_lesson is not None
        else "nothing is recording"
    )
    return Answer(req.id, False, f"no recording started by hand to stop: {what}")


def manual_join(now: float, devices: list[str]) -> JoinLesson:
    """A manual recording as a lesson: every device, no relay, at most MAX_MANUAL_S."""
    return JoinLesson(
        lesson_id=manual_lesson_id(now),
        role="lead",
        publish=devices,
        subscribe=[],
        start_at=now,
        end_at=now + MAX_MANUAL_S,
    )


def started(req: Request, join: JoinLesson) -> Answer:
    """The answer to a start that happened."""
    return Answer(
        req.id,
        True,
        f"recording by hand as {join.lesson_id} ({len(join.publish)} sources); "
        f"'classroom-agent record stop' ends it (it stops by itself after "
        f"{MAX_MANUAL_S // 3600} h)",
        join.lesson_id,
    )


def stopped(req: Request, lesson_dir: pathlib.Path) -> Answer:
    """The answer to a stop that happened."""
    files = sum(1 for p in lesson_dir.rglob("*") if p.is_file())
    return Answer(
        req.id,
        True,
        f"stopped {lesson_dir.name}: {files} files in {lesson_dir}, "
        "queued for upload ('classroom-agent uploads' shows progress)",
        lesson_dir.name,
    )
