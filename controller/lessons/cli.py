"""``classroom-controller lesson …``: schedule, show, list and override lessons, and their
recordings (catalogue, deletion)."""

from __future__ import annotations

import json
import pathlib
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import select

from controller.common.cli_common import DEFAULT_STATE, Database, JsonOut, StateDir, fail, open_db
from controller.common.errors import ControllerError
from controller.common.timeparse import parse_duration, parse_time
from controller.db.models import Lesson
from controller.db.session import as_utc
from controller.lessons.overrides import override
from controller.lessons.scheduling import get_lesson, lesson_document, schedule_placed
from controller.recordings.intake import catalogue_document
from controller.recordings.retention import delete_lesson_recordings
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import S3Location, S3Storage

lesson_app = typer.Typer(help="Lessons.", no_args_is_help=True)


@lesson_app.command("add")
def lesson_add(
    lead: Annotated[str, typer.Option(help="Lead classroom id.")],
    start: Annotated[str, typer.Option(help="ISO time or +30s.")],
    receiver: Annotated[
        list[str] | None, typer.Option(help="Receiving classroom id (repeat).")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(help="synchronous, delivery, master_teacher, open_school or research."),
    ] = "synchronous",
    teacher: Annotated[str | None, typer.Option(help="Lead teacher id.")] = None,
    subject: Annotated[str, typer.Option(help="Subject, e.g. music.")] = "",
    end: Annotated[str | None, typer.Option(help="ISO time or +10m.")] = None,
    duration: Annotated[str | None, typer.Option(help="e.g. 45m.")] = None,
    title: Annotated[str, typer.Option()] = "",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Schedule a one-off lesson (a 1+1 synchronous lesson unless --kind says otherwise)."""
    receiver = receiver or []
    try:
        start_at = parse_time(start)
        if (end is None) == (duration is None):
            raise ValueError("give exactly one of --end or --duration")
        end_at: datetime = parse_time(end) if end else start_at + parse_duration(duration or "")
    except ValueError as err:
        fail(str(err))
    factory = open_db(state_dir, database)
    with factory() as db:
        try:
            lesson, placement = schedule_placed(
                db, lead, receiver, start_at, end_at, title, kind, teacher, subject
            )
        except ControllerError as err:
            fail(str(err))
        doc = {**lesson_document(db, lesson), "placement": placement.document()}
    if json_out:
        typer.echo(json.dumps(doc))
    else:
        typer.echo(
            f"lesson {doc['id']} scheduled: {lead} → {', '.join(receiver)}, "
            f"{doc['start_at']} – {doc['end_at']}"
        )
        if placement.rung is not None:
            typer.echo(f"  {placement.reason}")


@lesson_app.command("show")
def lesson_show(
    lesson_id: str,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Show a lesson: state, events, reports and recordings."""
    factory = open_db(state_dir, database)
    with factory() as db:
        try:
            doc = lesson_document(db, get_lesson(db, lesson_id), state_dir / "storage")
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(
        f"lesson {doc['id']}  {doc['state']}  {doc['lead']} → "
        f"{', '.join(doc['receivers'])}  "  # type: ignore[arg-type]
        f"{doc['start_at']} – {doc['end_at']}"
    )
    for ev in doc["events"]:  # type: ignore[attr-defined]
        arrow = f"{ev['from']} → {ev['to']}  " if ev["to"] else ""
        typer.echo(f"  {ev['at']}  {arrow}{ev['detail']}")
    for rec in doc["recordings"]:  # type: ignore[attr-defined]
        typer.echo(
            f"  recording {rec['classroom']}/{rec['track']}: {rec['path']} "
            f"({rec['duration_s']:.1f} s, {rec['codec']})"
        )


@lesson_app.command("list")
def lesson_list(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """List lessons, newest first."""
    factory = open_db(state_dir, database)
    with factory() as db:
        rows = [
            {
                "id": x.id,
                "state": x.state,
                "lead": x.lead_classroom_id,
                "start_at": as_utc(x.start_at).isoformat(),
            }
            for x in db.scalars(select(Lesson).order_by(Lesson.start_at.desc())).all()
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['state']:<10} {r['start_at']}  lead {r['lead']}")


@lesson_app.command("override")
def lesson_override(
    lesson_id: Annotated[str, typer.Argument(help="Lesson id.")],
    action: Annotated[
        str, typer.Argument(help="end_now, extend, swap_lead, broadcast_only or cancel.")
    ],
    minutes: Annotated[float, typer.Option(help="For extend.")] = 0.0,
    lead: Annotated[str, typer.Option(help="For swap_lead: the new lead classroom.")] = "",
    actor: Annotated[str, typer.Option(help="Who (kept in the lesson's events).")] = "cli",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Change a lesson by hand: end early, extend, swap the lead, broadcast only, cancel."""
    factory = open_db(state_dir, database)
    with factory() as db:
        try:
            lesson = override(db, lesson_id, action, actor, minutes, lead)
        except ControllerError as err:
            fail(str(err))
        typer.echo(
            f"lesson {lesson.id}: {action} done ({lesson.state}, "
            f"{as_utc(lesson.start_at):%H:%M}–{as_utc(lesson.end_at):%H:%M} UTC)"
        )


@lesson_app.command("recordings")
def lesson_recordings(
    lesson_id: Annotated[str, typer.Argument(help="Lesson id.")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """The lesson's recording catalogue: coverage, gaps and files per classroom."""
    factory = open_db(state_dir, database)
    with factory() as db:
        try:
            doc = catalogue_document(db, lesson_id)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    if not doc["classrooms"]:
        typer.echo(f"lesson {lesson_id}: no classroom has uploaded its recording yet")
    for room in doc["classrooms"]:  # type: ignore[attr-defined]
        cov = room["coverage"]
        typer.echo(
            f"{room['classroom']}: covers {100 * cov['ratio']:.2f}% of {cov['scheduled_s']:.0f} s"
            f" (agent not running {cov['dead_s']:.1f} s)"
        )
        for track in cov["tracks"]:
            typer.echo(f"  {track['key']:<24} {100 * track['ratio']:6.2f}%")
            for gap in track["gaps"]:
                typer.echo(
                    f"    gap {gap['start_s']:.1f}–{gap['end_s']:.1f} s: {gap['reason']}"
                    f" ({gap['detail']})"
                )


@lesson_app.command("delete-recordings")
def lesson_delete_recordings(
    lesson_id: Annotated[str, typer.Argument(help="Lesson id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    actor: Annotated[str, typer.Option(help="Who asks (kept in the audit log).")] = "cli",
    storage: Annotated[str, typer.Option(envvar="CLASSBRIDGE_STORAGE", help="As for serve.")] = "",
    s3_endpoint: Annotated[
        str | None, typer.Option(envvar="CLASSBRIDGE_S3_ENDPOINT", help="As for serve.")
    ] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Delete a lesson's recordings from storage, with an audit record for each object."""
    factory = open_db(state_dir, database)
    backend: StorageBackend = (
        S3Storage(S3Location.parse(storage, s3_endpoint))
        if storage
        else LocalStorage(state_dir / "storage")
    )
    with factory() as db:
        try:
            lesson = get_lesson(db, lesson_id)
        except ControllerError as err:
            fail(str(err))
        freed = delete_lesson_recordings(db, backend, lesson, reason, actor)
    typer.echo(f"deleted recordings of {lesson_id}: {freed} bytes; see the deletion audit")
