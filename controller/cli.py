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

from controller.auth import audit
from controller.auth.audit import KEEP_DAYS_FLOOR
from controller.cli_common import (
    DEFAULT_STATE,
    Database,
    JsonOut,
    StateDir,
    chosen_database,
    fail,
    open_db,
)
from controller.daemon import ControllerConfig, ControllerDaemon
from controller.db.errors import DatabaseError
from controller.db.models import Classroom, Lesson
from controller.db.reach import DEFAULT_WAIT_S, wait_for_database
from controller.db.session import as_utc, migrate
from controller.db.urls import hide_password
from controller.errors import ControllerError
from controller.keys import ServerKeys
from controller.lessons import get_lesson, lesson_document, schedule_placed
from controller.overrides import override
from controller.publishing.origin import PRIVATE_NETWORKS
from controller.publishing.service import PublishingOptions
from controller.recordings import catalogue_document
from controller.registry import add_classroom, get_classroom
from controller.retention import DEFAULT_DAYS, RetentionPolicy, delete_lesson_recordings
from controller.security import SecurityPolicy
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import DEFAULT_PRESIGN_S, MAX_PRESIGN_S, S3Location, S3Storage
from controller.timeparse import parse_duration, parse_time
from controller.tls.cli import ProxyPort, TlsCert, TlsKey, TlsName, TrustedProxy, tls_app
from controller.tls.errors import TlsSetupError
from controller.upload_tokens import revoke
from protocols.private_files import private_dir

app = typer.Typer(
    help="classbridge controller: timetable, orchestration, relay, storage.", no_args_is_help=True
)
classroom_app = typer.Typer(help="Recording classrooms and their enrolment.", no_args_is_help=True)
lesson_app = typer.Typer(help="Lessons.", no_args_is_help=True)
app.add_typer(classroom_app, name="classroom")
app.add_typer(lesson_app, name="lesson")
app.add_typer(tls_app, name="tls")


@app.command()
def serve(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    database_wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep retrying an unreachable database at start-up (backoff "
            "0.5 s doubling to 10 s) before giving up.",
        ),
    ] = DEFAULT_WAIT_S,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Control port (enrolment uses port+1).")] = 7700,
    http_port: Annotated[int, typer.Option(help="HTTPS port: API, console, uploads.")] = 7780,
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
    presign_seconds: Annotated[
        int,
        typer.Option(
            envvar="CLASSBRIDGE_PRESIGN_SECONDS",
            min=1,
            max=MAX_PRESIGN_S,
            help="How long presigned S3 URLs (uploads, playback) stay valid, s.",
        ),
    ] = DEFAULT_PRESIGN_S,
    retention: Annotated[
        list[str] | None,
        typer.Option(
            help="Days to keep recordings of a lesson kind, e.g. synchronous=365 or "
            "master_teacher=forever (repeatable).",
        ),
    ] = None,
    audit_syslog: Annotated[
        str,
        typer.Option(
            envvar="CLASSBRIDGE_AUDIT_SYSLOG",
            help="Also send every audit row as RFC 5424 syslog to udp://HOST:PORT or "
            "unix:/dev/log (the county's log collector, or journald).",
        ),
    ] = "",
    audit_keep_days: Annotated[
        int, typer.Option(help=f"Days to keep the audit log (at least {KEEP_DAYS_FLOOR}).")
    ] = KEEP_DAYS_FLOOR,
    session_idle: Annotated[
        str, typer.Option(help="Console sessions end after this long idle, e.g. 30m.")
    ] = "30m",
    session_lifetime: Annotated[
        str, typer.Option(help="…and after this long in all, however busy, e.g. 12h.")
    ] = "12h",
    upload_token_rotation: Annotated[
        str, typer.Option(help="A connected agent gets a fresh upload token this often.")
    ] = "24h",
    upload_token_grace: Annotated[
        str, typer.Option(help="A replaced upload token keeps working this long.")
    ] = "1h",
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_name: TlsName = None,
    trusted_proxy: TrustedProxy = None,
    proxy_port: ProxyPort = 7781,
    agent_endpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="Several controllers: every controller's control socket, tcp://HOST:PORT, "
            "in the order agents try them (repeatable); enrolment gives agents this list.",
        ),
    ] = None,
    release_tick: Annotated[
        float,
        typer.Option(
            envvar="CLASSBRIDGE_RELEASE_TICK_S",
            min=0.1,
            help="How often the agent rollout takes its next step, s.",
        ),
    ] = 30.0,
    hls_origin: Annotated[
        str,
        typer.Option(
            help="Publish open lessons as HLS (controller.publishing): the HOST:PORT the "
            "origin's nginx serves viewers on. Empty: no publishing.",
        ),
    ] = "",
    hls_rtmp: Annotated[
        str, typer.Option(help="HOST:PORT the origin takes the lead's RTMP push on.")
    ] = "127.0.0.1:1935",
    hls_push_url: Annotated[
        str, typer.Option(help="rtmp://HOST:PORT lead agents reach the origin at.")
    ] = "",
    hls_public_url: Annotated[
        str, typer.Option(help="The viewers' base URL (a CDN or proxy in front of the origin).")
    ] = "",
    hls_intranet_network: Annotated[
        list[str] | None,
        typer.Option(help="A network (CIDR) intranet links admit (repeatable; default private)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v")] = False,
) -> None:
    """Run the controller (HTTPS on --http-port)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s controller %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = ControllerConfig(
            state_dir=state_dir,
            database_url=chosen_database(state_dir, database),
            database_wait_s=database_wait,
            bind_host=bind,
            control_port=port,
            http_port=http_port,
            heartbeat_s=heartbeat,
            prepare_s=prepare,
            media_addresses=tuple(media_address or [bind]),
            storage_url=storage,
            s3_endpoint=s3_endpoint,
            presign_s=presign_seconds,
            retention=_retention_policy(retention or []),
            audit_syslog=audit_syslog,
            audit_keep_days=audit_keep_days,
            security=_security_policy(
                session_idle=session_idle,
                session_lifetime=session_lifetime,
                upload_token_rotation=upload_token_rotation,
                upload_token_grace=upload_token_grace,
            ),
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_names=tuple(tls_name or []),
            trusted_proxies=tuple(trusted_proxy or []),
            proxy_port=proxy_port,
            release_tick_s=release_tick,
            agent_endpoints=tuple(agent_endpoint or []),
            publishing=PublishingOptions(
                http_listen=hls_origin,
                rtmp_listen=hls_rtmp,
                push_base=hls_push_url,
                public_base=hls_public_url,
                intranet_networks=tuple(hls_intranet_network or PRIVATE_NETWORKS),
            )
            if hls_origin
            else None,
        )
    except ValueError as err:
        fail(str(err))
    try:
        asyncio.run(ControllerDaemon(config).run())
    except (TlsSetupError, DatabaseError) as err:
        fail(str(err))


def _security_policy(**spans: str) -> SecurityPolicy:
    """The policy from ``--option DURATION`` pairs; a bad one fails naming its option."""
    values = {}
    for name, text in spans.items():
        try:
            values[name] = parse_duration(text)
        except ValueError as err:
            fail(f"--{name.replace('_', '-')}: {err}")
    try:
        return SecurityPolicy(**values)
    except ValueError as err:
        fail(str(err))


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
def migrate_cmd(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE), database: Database = None
) -> None:
    """Create or upgrade the database schema."""
    url = chosen_database(state_dir, database)
    private_dir(state_dir)
    try:
        wait_for_database(url, wait_s=0)
    except DatabaseError as err:
        fail(str(err))
    migrate(url)
    typer.echo(f"database at {hide_password(url)} is up to date")


@classroom_app.command("add")
def classroom_add(
    classroom_id: Annotated[str, typer.Argument(help="e.g. city-3-101")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    school: Annotated[str, typer.Option(help="School name.")] = "",
    valid: Annotated[
        str, typer.Option(help="How long the token works, e.g. 24h (at most 7d).")
    ] = "24h",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Add a classroom (or re-issue its token) and print its one-time enrolment token.

    Enrolling with it replaces the classroom's agent key, if it had one: that raises an
    alert and an audit row."""
    ttl = _security_policy(enrol_token_ttl=valid).enrol_token_ttl
    factory = open_db(state_dir, database)
    keys = ServerKeys.load_or_create(state_dir)
    with factory() as db:
        try:
            token = add_classroom(db, classroom_id, name, school, keys.public, ttl)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps({"classroom": classroom_id, "token": token}))
    else:
        typer.echo(token)


@classroom_app.command("revoke-upload-token")
def classroom_revoke_upload_token(
    classroom_id: Annotated[str, typer.Argument(help="e.g. city-3-101")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Make the classroom's upload tokens stop working now.

    A running controller gives the classroom's connected agent a fresh token within a
    minute, over its authenticated control channel; a copied token stays useless."""
    with open_db(state_dir, database)() as db:
        try:
            get_classroom(db, classroom_id)
        except ControllerError as err:
            fail(str(err))
        count = revoke(db, classroom_id)
        audit.record(
            db, "upload_token_revoked", username="cli", target=classroom_id, detail={"count": count}
        )
    typer.echo(
        f"revoked {count} upload token(s) of {classroom_id}; its agent gets a fresh one "
        "within a minute if it is connected"
    )


@classroom_app.command("list")
def classroom_list(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """List classrooms."""
    factory = open_db(state_dir, database)
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


from controller.auth.cli import register_auth_commands  # noqa: E402
from controller.backup.cli import register_backup_commands  # noqa: E402
from controller.media_plane.cli import media_plane_app  # noqa: E402
from controller.network_cli import bandwidth_cmd, network_app  # noqa: E402
from controller.notify.cli import notify_app  # noqa: E402
from controller.personal_data.cli import data_app  # noqa: E402
from controller.releases.cli import release_app  # noqa: E402
from controller.timetable.cli import timetable_app  # noqa: E402 - after the shared helpers

app.add_typer(timetable_app, name="timetable")
app.add_typer(network_app, name="network-profile")
app.add_typer(data_app, name="data")
app.add_typer(notify_app, name="notify")
app.add_typer(release_app, name="release")
app.add_typer(media_plane_app, name="media-plane")
app.command("bandwidth")(bandwidth_cmd)
register_auth_commands(app)
register_backup_commands(app)


def main() -> None:
    """Console-script entry point."""
    app()
