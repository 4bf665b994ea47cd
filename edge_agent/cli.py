"""``classroom-agent``: the technician's CLI (enrol, run, check the profile)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import time
from typing import Annotated, Any

import typer

from edge_agent import cli_tech
from edge_agent.daemon import AgentDaemon
from edge_agent.enrol import enrol_blocking
from edge_agent.errors import AgentError
from edge_agent.identity import Identity
from edge_agent.manual_record import Action, send_request, wait_answer
from edge_agent.media.priority import limit_arenas
from edge_agent.profile import load_profile
from edge_agent.remote_actions import RESTART_EXIT_CODE
from edge_agent.status import collect as collect_status
from edge_agent.status import render as render_status
from edge_agent.updates.settings import DEFAULT_RELEASE_KEY, DEFAULT_RELEASES, UpdateSettings
from edge_agent.updates.updater import POLL_S
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.throttle import UploadLimits
from protocols.network_profile import NetworkProfileError, load_network_profile_toml
from protocols.private_files import private_dir, restrict_umask

app = typer.Typer(help="classbridge edge agent for a recording classroom.", no_args_is_help=True)
profile_app = typer.Typer(help="Hardware profiles.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
record_app = typer.Typer(
    help="Record by hand, outside the timetable (the running agent does it).",
    no_args_is_help=True,
)
app.add_typer(record_app, name="record")
app.add_typer(cli_tech.test_app, name="test")
app.add_typer(cli_tech.net_app, name="net")
app.command("devices")(cli_tech.devices)
app.command("doctor")(cli_tech.doctor)
app.command("logs")(cli_tech.logs)

DEFAULT_STATE = os.environ.get("CLASSBRIDGE_AGENT_STATE", "/var/lib/classbridge/agent")
DEFAULT_PROFILE = os.environ.get("CLASSBRIDGE_PROFILE", "/etc/classbridge/profile.toml")
StateDir = Annotated[
    pathlib.Path,
    typer.Option("--state-dir", envvar="CLASSBRIDGE_AGENT_STATE", help="Agent state directory."),
]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def enroll(
    controller: Annotated[str, typer.Option(help="tcp://HOST:PORT of the controller.")],
    token: Annotated[str, typer.Option(help="One-time token from 'classroom add'.")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
) -> None:
    """Make this agent's key pair and enrol it with the controller."""
    try:
        identity = enrol_blocking(controller, token, state_dir)
    except AgentError as err:
        _fail(str(err))
    typer.echo(f"enrolled as classroom {identity.classroom_id} with {controller}")


@app.command()
def run(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    profile: Annotated[
        pathlib.Path, typer.Option(envvar="CLASSBRIDGE_PROFILE", help="Hardware profile TOML.")
    ] = pathlib.Path(DEFAULT_PROFILE),
    media_address: Annotated[
        list[str] | None,
        typer.Option(help="Address(es) for WebRTC media; default: every interface."),
    ] = None,
    segment_seconds: Annotated[float, typer.Option(help="Recording segment length.")] = 10.0,
    upload_live_kbps: Annotated[
        int,
        typer.Option(
            envvar="CLASSBRIDGE_UPLOAD_LIVE_KBPS",
            help="Upload limit while a lesson is live, kbit/s (0: none).",
        ),
    ] = 2000,
    upload_idle_kbps: Annotated[
        int,
        typer.Option(
            envvar="CLASSBRIDGE_UPLOAD_IDLE_KBPS",
            help="Upload limit between lessons, kbit/s (0: none).",
        ),
    ] = 0,
    disk_reserve_mb: Annotated[
        int,
        typer.Option(
            envvar="CLASSBRIDGE_DISK_RESERVE_MB",
            help="Free space kept beyond what a lesson needs, MB.",
        ),
    ] = 2048,
    network_profile: Annotated[
        pathlib.Path | None,
        typer.Option(
            envvar="CLASSBRIDGE_NETWORK_PROFILE",
            help="Network profile TOML, used until the controller assigns one.",
        ),
    ] = None,
    releases_dir: Annotated[
        pathlib.Path,
        typer.Option(
            envvar="CLASSBRIDGE_RELEASES_DIR",
            help="Where agent releases are installed (staged updates).",
        ),
    ] = DEFAULT_RELEASES,
    release_key: Annotated[
        pathlib.Path,
        typer.Option(
            envvar="CLASSBRIDGE_RELEASE_KEY",
            help="The release public key (PEM) that agent updates must be signed with.",
        ),
    ] = DEFAULT_RELEASE_KEY,
    update_poll_s: Annotated[
        float,
        typer.Option(
            envvar="CLASSBRIDGE_UPDATE_POLL_S",
            help="How often to ask the controller for an update, seconds.",
        ),
    ] = POLL_S,
    verbose: Annotated[bool, typer.Option("-v")] = False,
) -> None:
    """Run the agent daemon (what systemd starts)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s agent %(levelname)s %(name)s: %(message)s",
    )
    # Before any thread exists: fewer malloc arenas keep a weeks-long daemon's memory flat.
    limit_arenas()
    # Segments, the upload journal and the schedule cache are the agent user's alone. Only
    # the daemon does this: a technician's command run as root must leave files the
    # daemon can read.
    restrict_umask()
    try:
        if state_dir.exists():
            private_dir(state_dir)
        identity = Identity.load(state_dir)
        loaded = load_profile(profile)
        network = (
            None
            if network_profile is None
            else load_network_profile_toml(network_profile.read_text(), str(network_profile))
        )
    except (AgentError, NetworkProfileError) as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"cannot read the network profile: {err}")
    daemon = AgentDaemon(
        state_dir,
        identity,
        loaded,
        media_addresses=media_address,
        segment_seconds=segment_seconds,
        upload_limits=UploadLimits(upload_live_kbps, upload_idle_kbps),
        disk_reserve_bytes=disk_reserve_mb * 1024 * 1024,
        network_profile=network,
        updates=UpdateSettings(releases_dir, release_key, update_poll_s),
    )
    asyncio.run(daemon.run())
    if daemon.restart_requested:  # from the console: systemd's Restart=on-failure
        raise typer.Exit(RESTART_EXIT_CODE)


@app.command()
def status(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Enrolment, cached lessons and recordings waiting to upload; exit 1 if not enrolled."""
    doc = collect_status(state_dir, time.time())
    typer.echo(json.dumps(doc) if json_out else render_status(doc))
    if not doc["enrolled"]:
        raise typer.Exit(1)


@app.command()
def uploads(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Recording files not yet confirmed by storage, with attempts and last error.

    Exit 0 when nothing is waiting, 1 when files are waiting (retried automatically)."""
    path = state_dir / "uploads.sqlite3"
    if not path.exists():
        typer.echo("no upload journal yet: this agent has recorded nothing")
        return
    journal = UploadJournal(path)
    try:
        pending, summary = journal.pending(), journal.summary()
    finally:
        journal.close()
    rows: list[dict[str, Any]] = [
        {
            "lesson": p.lesson_id,
            "file": p.rel,
            "bytes": p.size,
            "attempts": p.attempts,
            "next_try_in_s": round(max(p.next_try_at - time.time(), 0.0), 1),
            "last_error": p.last_error,
        }
        for p in pending
    ]
    if json_out:
        typer.echo(json.dumps({"summary": summary, "pending": rows}))
    else:
        for state in ("verified", "evicted", "lost"):
            info = summary.get(state)
            if isinstance(info, dict):
                typer.echo(f"{state:<9} {info['files']} files, {info['bytes'] / 1e6:.1f} MB")
        typer.echo(f"waiting   {len(rows)} files")
        for r in rows[:50]:
            error = f"  last error: {r['last_error']}" if r["last_error"] else ""
            typer.echo(
                f"  {r['lesson']}/{r['file']}  {r['bytes'] / 1e6:.1f} MB  tried "
                f"{r['attempts']}×, next in {r['next_try_in_s']} s{error}"
            )
    if rows:
        raise typer.Exit(1)


def _record(state_dir: pathlib.Path, action: Action, json_out: bool, timeout: float) -> None:
    if not state_dir.is_dir():
        _fail(f"state directory {state_dir} does not exist; is the agent installed and enrolled?")
    req = send_request(state_dir, action)
    if not json_out:
        typer.echo(f"asking the running agent to {action} recording…", err=True)
    ans = wait_answer(state_dir, req, timeout)
    if ans is None:
        message = (
            f"the agent did not answer within {timeout:.0f} s; is it running? "
            "('systemctl status classroom-agent', 'classroom-agent logs')"
        )
        if json_out:
            typer.echo(json.dumps({"ok": False, "error": message}))
        else:
            typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)
    if json_out:
        typer.echo(json.dumps({"ok": ans.ok, "message": ans.message, "lesson": ans.lesson_id}))
    else:
        typer.echo(ans.message if ans.ok else f"error: {ans.message}", err=not ans.ok)
    if not ans.ok:
        raise typer.Exit(1)


@record_app.command("start")
def record_start(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the agent.")] = 10.0,
) -> None:
    """Start recording every device now, as a manual recording (exit 1 if refused)."""
    _record(state_dir, "start", json_out, timeout)


@record_app.command("stop")
def record_stop(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the agent.")] = 30.0,
) -> None:
    """Stop the manual recording; its files are queued for upload (exit 1 if none)."""
    _record(state_dir, "stop", json_out, timeout)


@profile_app.command("validate")
@profile_app.command("check", hidden=True)
def profile_check(
    path: pathlib.Path, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Validate a hardware profile; exit 2 with the reason if it is invalid."""
    try:
        loaded = load_profile(path)
    except AgentError as err:
        if json_out:
            typer.echo(json.dumps({"ok": False, "error": str(err)}))
            raise typer.Exit(2) from None
        _fail(str(err))
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "ok": True,
                    "name": loaded.profile.name,
                    "digest": loaded.digest,
                    "devices": [d.name for d in loaded.profile.devices],
                }
            )
        )
    else:
        typer.echo(
            f"{path}: profile {loaded.profile.name!r} is valid "
            f"({len(loaded.profile.devices)} devices)"
        )


def main() -> None:
    """Console-script entry point."""
    app()
