"""``classroom-controller network-profile …`` and ``classroom-controller bandwidth``:
network profiles, their assignment, and planned against measured bandwidth."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer

from controller.common.cli_common import DEFAULT_STATE, Database, JsonOut, StateDir, fail, open_db
from controller.common.errors import ControllerError
from controller.db.session import utcnow
from controller.network.bandwidth import bandwidth_document, bandwidth_view
from controller.network.profiles import (
    assign_profile,
    get_profile,
    list_profiles,
    parse_profile_text,
    profile_document,
    put_profile,
)
from protocols.network_profile import NetworkProfile

network_app = typer.Typer(
    help="Network profiles (网络配置): VLAN, subnet, uplink, classroom cap and video ladder.",
    no_args_is_help=True,
)


def _ladder(profile: NetworkProfile) -> str:
    return " > ".join(f"{r.name} {r.kbps}" for r in profile.ladder) + " kbps"


@network_app.command("add")
def add_cmd(
    file: Annotated[pathlib.Path, typer.Argument(help="Profile as TOML (or .json).")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Add a profile, or replace the one of the same name. Exit 2 if it is not valid."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"{file}: {err}")
    with open_db(state_dir, database)() as db:
        try:
            profile = parse_profile_text(text, str(file))
            created = put_profile(db, profile, str(file))
        except ControllerError as err:
            fail(str(err))
    verb = "added" if created else "replaced"
    typer.echo(f"network profile {profile.name!r} {verb}: {_ladder(profile)}")


@network_app.command("list")
def list_cmd(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Every profile, with the schools and classrooms it is assigned to."""
    with open_db(state_dir, database)() as db:
        try:
            stored = list_profiles(db)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps([s.document() for s in stored]))
        return
    if not stored:
        typer.echo("no network profiles; add one with 'network-profile add FILE.toml'")
    for s in stored:
        p = s.profile
        where = [*(f"school {x}" for x in s.schools), *(f"classroom {x}" for x in s.classrooms)]
        typer.echo(
            f"{p.name:<20} VLAN {p.vlan_id or '-':<5} {p.subnet or '-':<18} "
            f"uplink {p.uplink_kbps or '?'} kbps, cap {p.classroom_cap_kbps} kbps, "
            f"{_ladder(p)}; {', '.join(where) or 'not assigned'}"
        )


@network_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """One profile in full."""
    with open_db(state_dir, database)() as db:
        try:
            profile = get_profile(db, name)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps(profile_document(profile), indent=2))
        return
    p = profile
    typer.echo(f"network profile {p.name}")
    typer.echo(f"  VLAN {p.vlan_id or '-'}, subnet {p.subnet or '-'}")
    typer.echo(
        f"  uplink {p.uplink_kbps or 'not known'} kbps, classroom cap {p.classroom_cap_kbps} "
        f"kbps, audio {p.audio_kbps} kbps"
    )
    typer.echo(
        f"  DSCP audio {p.dscp_audio}, video {p.dscp_video}; shaper {'on' if p.shaper else 'off'}"
    )
    for r in p.ladder:
        typer.echo(f"  rung {r.name:<8} {r.width}x{r.height} {r.fps} fps {r.kbps} kbps")


def _assign(
    name: str | None,
    school: str | None,
    classroom: str | None,
    state: pathlib.Path,
    database: str | None,
) -> None:
    if (school is None) == (classroom is None):
        fail("give exactly one of --school or --classroom")
    with open_db(state, database)() as db:
        try:
            done = assign_profile(db, name, school, classroom)
        except ControllerError as err:
            fail(str(err))
    typer.echo(done)


@network_app.command("assign")
def assign_cmd(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    school: Annotated[str | None, typer.Option(help="School id.")] = None,
    classroom: Annotated[
        str | None, typer.Option(help="Classroom id (overrides its school's).")
    ] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Assign a profile to a school or a classroom; agents get it when they next register."""
    _assign(name, school, classroom, state_dir, database)


@network_app.command("unassign")
def unassign_cmd(
    school: Annotated[str | None, typer.Option(help="School id.")] = None,
    classroom: Annotated[str | None, typer.Option(help="Classroom id.")] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Remove a school's or a classroom's own profile (a classroom falls back to its school's)."""
    _assign(None, school, classroom, state_dir, database)


def bandwidth_cmd(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: JsonOut = False,
) -> None:
    """Per school: uplink, planned kbps of the lessons under way, measured kbps sent."""
    now = utcnow()
    with open_db(state_dir, database)() as db:
        try:
            view = bandwidth_view(db, None, now)
        except ControllerError as err:
            fail(str(err))
    if json_out:
        typer.echo(json.dumps(bandwidth_document(view, now)))
        return
    typer.echo(f"{'school / classroom':<28} {'uplink':>8} {'planned':>8} {'measured':>9}  kbps")
    for s in view:
        typer.echo(
            f"{s.school:<28} {s.uplink_kbps or '?':>8} {s.planned_kbps:>8} {s.measured_kbps:>9.0f}"
        )
        for c in s.classrooms:
            state = "online" if c.online else "offline"
            cap = f"cap {c.cap_kbps}" if c.cap_kbps else ""
            lessons = f"  lessons {', '.join(c.lessons)}" if c.lessons else ""
            typer.echo(
                f"  {c.classroom:<26} {cap:>8} {c.planned_kbps:>8} {c.measured_kbps:>9.0f}"
                f"  {state}{lessons}"
            )
