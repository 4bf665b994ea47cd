"""``classroom-controller``: serve, and the scheduler's admin tasks."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import select

from controller.cli_common import DEFAULT_STATE, JsonOut, StateDir, fail, open_db
from controller.daemon import ControllerConfig, ControllerDaemon
from controller.db.models import Classroom, Lesson
from controller.db.session import as_utc, database_url, migrate
from controller.errors import ControllerError
from controller.keys import ServerKeys
from controller.lessons import get_lesson, lesson_document, schedule_placed
from controller.overrides import override
from controller.recordings import catalogue_document
from controller.registry import add_classroom
from controller.retention import DEFAULT_DAYS, RetentionPolicy, delete_lesson_recordings
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import S3Location, S3Storage
from controller.timeparse import parse_duration, parse_time

app = typer.Typer(
    help="classbridge controller: timetable, orchestration, relay, storage.", no_args_is_help=True
)
classroom_app = typer.Typer(help="Recording classrooms and their enrolment.", no_args_is_help=True)
lesson_app = typer.Typer(help="Lessons.", no_args_is_help=True)
app.add_typer(classroom_app, name="classroom")
app.add_typer(lesson_app, name="lesson")


@app.command()
def serve(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Control port (enrolment uses port+1).")] = 7700,
    http_port: Annotated[int, typer.Option(help="HTTP API port.")] = 7780,
    heartbeat: Annotated[float, typer.Option(help="Agent heartbeat interval, s.")] = 2.0,
    prepare: Annotated[
        float, typer.Option(help="Seconds before a lesson that agents join and report readiness.")
    ] = 300.0,
    media_address: Annotated[
        list[str] | None, typer.Option(help="Address(es) for WebRTC media (ICE host candidates).")
    ] = None,
    storage: Annotated[
        str,
        typer.Option(
            envvar="CLASSBRIDGE_STORAGE",
            help="Where recordings go: empty for STATE_DIR/storage, or s3://bucket/prefix "
            "(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
        ),
    ] = "",
    s3_endpoint: Annotated[
        str | None,
        typer.Option(envvar="CLASSBRIDGE_S3_ENDPOINT", help="Endpoint of a non-AWS S3 store."),
    ] = None,
    retention: Annotated[
        list[str] | None,
        typer.Option(
            help="Days to keep recordings of a lesson kind, e.g. synchronous=365 or "
            "master_teacher=forever (repeatable).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v")] = False,
) -> None:
    """Run the controller."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s controller %(levelname)s %(name)s: %(message)s",
    )
    config = ControllerConfig(
        state_dir=state_dir,
        bind_host=bind,
        control_port=port,
        http_port=http_port,
        heartbeat_s=heartbeat,
        prepare_s=prepare,
        media_addresses=tuple(media_address or [bind]),
        storage_url=storage,
        s3_endpoint=s3_endpoint,
        retention=_retention_policy(retention or []),
    )
    asyncio.run(ControllerDaemon(config).run())


def _retention_policy(items: list[str]) -> RetentionPolicy:
    days = dict(DEFAULT_DAYS)
    for item in items:
        kind, _, value = item.partition("=")
        if not kind or not value:
            fail(f"--retention {item!r}: write KIND=DAYS, e.g. synchronous=365")
        if value == "forever":
            days[kind] = None
        elif value.isdigit() and int(value) > 0:
            days[kind] = int(value)
        else:
            fail(f"--retention {item!r}: days must be a whole number above 0, or 'forever'")
    return RetentionPolicy(days=days)


@app.command("migrate")
def migrate_cmd(state_dir: StateDir = pathlib.Path(DEFAULT_STATE)) -> None:
    """Create or upgrade the database schema."""
    url = database_url(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    migrate(url)
    typer.echo(f"database at {url} is up to date")


@classroom_app.command("add")
def classroom_add(
    classroom_id: Annotated[str, typer.Argument(help="e.g. city-3-101")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    school: Annotated[str, typer.Option(help="School name.")] = "",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    json_out: JsonOut = False,
) -> None:
    """Add a classroom and print its one-time enrolment token."""
    factory = open_db(state_dir)
    keys = ServerKeys.load_or_create(state_dir)
    with factory() as db:
        try:
            token = add_classroom(db, classroom_id, name, school, keys.public)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps({"classroom": classroom_id, "token": token}))
    else:
        typer.echo(token)


@classroom_app.command("list")
def classroom_list(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE), json_out: JsonOut = False
) -> None:
    """List classrooms."""
    factory = open_db(state_dir)
    with factory() as db:
        rooms = db.scalars(select(Classroom).order_by(Classroom.id)).all()
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "school": r.school,
                "enrolled": r.public_key is not None,
                "online": r.online,
            }
            for r in rooms
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        state = "online" if r["online"] else ("enrolled" if r["enrolled"] else "not enrolled")
        typer.echo(f"{r['id']:<24} {state:<13} {r['name']}")


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
    factory = open_db(state_dir)
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
    lesson_id: str, state_dir: StateDir = pathlib.Path(DEFAULT_STATE), json_out: JsonOut = False
) -> None:
    """Show a lesson: state, events, reports and recordings."""
    factory = open_db(state_dir)
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
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE), json_out: JsonOut = False
) -> None:
    """List lessons, newest first."""
    factory = open_db(state_dir)
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
) -> None:
    """Change a lesson by hand: end early, extend, swap the lead, broadcast only, cancel."""
    factory = open_db(state_dir)
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
    json_out: JsonOut = False,
) -> None:
    """The lesson's recording catalogue: coverage, gaps and files per classroom."""
    factory = open_db(state_dir)
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
) -> None:
    """Delete a lesson's recordings from storage, with an audit record for each object."""
    factory = open_db(state_dir)
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


from controller.auth.cli import register_auth_commands  # noqa: E402
from controller.network_cli import bandwidth_cmd, network_app  # noqa: E402
from controller.timetable.cli import timetable_app  # noqa: E402 - after the shared helpers

app.add_typer(timetable_app, name="timetable")
app.add_typer(network_app, name="network-profile")
app.command("bandwidth")(bandwidth_cmd)
register_auth_commands(app)


def main() -> None:
    """Console-script entry point."""
    app()
