"""``classroom-controller``: serve and migrate, with every feature's commands assembled
(each feature folder owns its own: agents/cli.py, lessons/cli.py, network/cli.py, …)."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from typing import Annotated

import typer

from controller.agents.cli import classroom_app
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.auth.audit import KEEP_DAYS_FLOOR
from controller.auth.cli import register_auth_commands
from controller.backup.cli import register_backup_commands
from controller.common.cli_common import (
    DEFAULT_STATE,
    Database,
    StateDir,
    chosen_database,
    fail,
    security_policy,
)
from controller.db.errors import DatabaseError
from controller.db.reach import DEFAULT_WAIT_S, wait_for_database
from controller.db.session import migrate
from controller.db.urls import hide_password
from controller.lessons.cli import lesson_app
from controller.media_plane.cli import media_plane_app
from controller.media_plane.config import MediaPlaneConfig, exposed_secrets, load_config
from controller.media_plane.exceptions import ConfigError
from controller.network.cli import bandwidth_cmd, network_app
from controller.notify.cli import notify_app
from controller.personal_data.cli import data_app
from controller.publishing.origin import PRIVATE_NETWORKS
from controller.publishing.service import PublishingOptions
from controller.recordings.retention import DEFAULT_DAYS, RetentionPolicy
from controller.releases.cli import release_app
from controller.storage.s3 import DEFAULT_PRESIGN_S, MAX_PRESIGN_S
from controller.timetable.cli import timetable_app
from controller.tls.cli import ProxyPort, TlsCert, TlsKey, TlsName, TrustedProxy, tls_app
from controller.tls.errors import TlsSetupError
from protocols.private_files import private_dir

app = typer.Typer(
    help="classbridge controller: timetable, orchestration, relay, storage.", no_args_is_help=True
)


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
    media_plane: Annotated[
        pathlib.Path | None,
        typer.Option(
            help="The media plane's TOML file ([media_plane] backend = builtin or janus, "
            "and the Janus instances; see controller/media_plane/sample.toml). "
            "Absent: the built-in relay.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v")] = False,
) -> None:
    """Run the controller (HTTPS on --http-port)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s controller %(levelname)s %(name)s: %(message)s",
    )
    plane = _media_plane(media_plane) if media_plane is not None else None
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
            security=security_policy(
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
            media_plane=plane,
        )
    except ValueError as err:
        fail(str(err))
    try:
        asyncio.run(ControllerDaemon(config).run())
    except (TlsSetupError, DatabaseError) as err:
        fail(str(err))


def _media_plane(path: pathlib.Path) -> MediaPlaneConfig:
    """The media plane's file, checked; a bad setting fails naming the file and setting."""
    try:
        cfg = load_config(path)
    except ConfigError as err:
        fail(str(err))
    warning = exposed_secrets(path, cfg)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    return cfg


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


app.add_typer(classroom_app, name="classroom")
app.add_typer(lesson_app, name="lesson")
app.add_typer(tls_app, name="tls")
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
