"""``classroom-controller release …``: agent releases and their staged rollout."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer

from controller.common.cli_common import DEFAULT_STATE, Database, JsonOut, StateDir, fail, open_db
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import Classroom
from controller.releases import store
from controller.releases.api import DEFAULT_HEALTH_DEADLINE_S, DEFAULT_WINDOW
from controller.releases.planner import Window
from protocols.releases import ReleaseSignatureError, key_id, load_public_key

release_app = typer.Typer(
    help="Agent releases, update rings and staged rollouts (分批升级).", no_args_is_help=True
)
RolloutId = Annotated[
    int | None, typer.Argument(help="Rollout id (default: the one running or paused).")
]


# PEM text starts with dashes: taken as the argument, not as an unknown option.
@release_app.command("trust-key", context_settings={"ignore_unknown_options": True})
def trust_key_cmd(
    public_key: Annotated[
        str,
        typer.Argument(
            help='The release public key: a PEM file, or its PEM text ("$(cat release.pub)").'
        ),
    ],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
) -> None:
    """Accept releases signed with this public key (its private half stays off here)."""
    try:
        if public_key.lstrip().startswith("-----BEGIN"):
            pem, where = public_key.encode(), "the key given"
        else:
            pem, where = pathlib.Path(public_key).read_bytes(), public_key
        key = load_public_key(pem, where)
    except (OSError, ReleaseSignatureError) as err:
        fail(str(err))
    folder = state_dir / store.KEYS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key_id(key)}.pem").write_bytes(pem)
    typer.echo(f"release key {key_id(key)} trusted")


@release_app.command("add")
def add_cmd(
    wheel: Annotated[pathlib.Path, typer.Argument(help="classbridge-<version>-py3-none-any.whl")],
    signature: Annotated[
        pathlib.Path | None,
        typer.Option("--signature", help="Its detached signature (default: WHEEL.sig)."),
    ] = None,
    notes: Annotated[str, typer.Option("--notes", help="What changed, for the console.")] = "",
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Hold a signed agent release (the signature is checked here, and by every agent)."""
    sig = signature or wheel.with_name(wheel.name + ".sig")
    try:
        data, sig_text = wheel.read_bytes(), sig.read_text()
        keys = store.trusted_keys(state_dir)
    except (OSError, ReleaseSignatureError) as err:
        fail(str(err))
    with open_db(state_dir, database)() as db:
        try:
            row = store.add_release(db, wheel.name, data, sig_text, keys, "cli", notes)
        except (InvalidRequest, ValueError) as err:
            fail(f"{wheel}: {err}")
        typer.echo(f"release {row.version} added ({row.size} bytes, key {row.key_id})")


@release_app.command("ring")
def ring_cmd(
    name: Annotated[str, typer.Argument(help="A classroom's id, or a school's name.")],
    ring: Annotated[str, typer.Argument(help="pilot, early or general ('' removes it)")],
    school: Annotated[
        bool, typer.Option("--school", help="NAME is a school even if a classroom has that id.")
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Put one classroom, or every classroom of a school, in an update ring."""
    with open_db(state_dir, database)() as db:
        scope = "school" if school or db.get(Classroom, name) is None else "classroom"
        try:
            store.set_ring(db, scope, name, ring, "cli")
        except (InvalidRequest, NotFound) as err:
            fail(str(err))
    typer.echo(f"{scope} {name}: ring {ring or '(none: general)'}")


@release_app.command("rollout")
def rollout_cmd(
    version: Annotated[str, typer.Argument(help="The release to roll out.")],
    window: Annotated[
        str, typer.Option("--window", help="Daily maintenance window, local HH:MM-HH:MM.")
    ] = "-".join(DEFAULT_WINDOW),
    timezone: Annotated[str, typer.Option("--timezone")] = "Asia/Shanghai",
    health_deadline: Annotated[
        int, typer.Option("--health-deadline", help="Seconds an agent has to report healthy.")
    ] = DEFAULT_HEALTH_DEADLINE_S,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Roll a release out ring by ring, between lessons, inside the maintenance window."""
    start, _, end = window.partition("-")
    try:
        span = Window(start, end, timezone)
    except ValueError as err:
        fail(f"--window {window!r}: {err}")
    with open_db(state_dir, database)() as db:
        try:
            row = store.start_rollout(db, version, span, health_deadline, "cli")
        except (InvalidRequest, NotFound) as err:
            fail(str(err))
        typer.echo(f"rollout {row.id} of {version} started at ring {row.ring}, window {span}")


@release_app.command("pause")
def pause_cmd(
    rollout: RolloutId = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Pause the rollout: no classroom is offered the release until it is resumed."""
    with open_db(state_dir, database)() as db:
        try:
            row = store.pause(db, rollout, "paused from the command line")
        except (InvalidRequest, NotFound) as err:
            fail(str(err))
        typer.echo(f"rollout {row.id} paused at ring {row.ring}")


@release_app.command("resume")
def resume_cmd(
    rollout: RolloutId = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Resume a paused rollout (its ring's failed classrooms are offered again)."""
    with open_db(state_dir, database)() as db:
        try:
            row = store.resume(db, rollout)
        except (InvalidRequest, NotFound) as err:
            fail(str(err))
        typer.echo(f"rollout {row.id} running at ring {row.ring}")


@release_app.command("status")
def status_cmd(
    as_json: JsonOut = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Releases, rings, and the latest rollouts with each classroom's progress."""
    with open_db(state_dir, database)() as db:
        doc = store.status(db)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    releases = doc["releases"]
    assert isinstance(releases, list)
    if not releases:
        typer.echo("no releases: add one with 'classroom-controller release add WHEEL'")
    for r in releases:
        typer.echo(f"release {r['version']:<16} {r['size']:>9} B  key {r['key_id']}  {r['notes']}")
    rollouts = doc["rollouts"]
    assert isinstance(rollouts, list)
    for r in rollouts:
        line = f"rollout {r['id']} of {r['version']}: {r['state']} at ring {r['ring']}"
        typer.echo(line + (f" — {r['paused_reason']}" if r["paused_reason"] else ""))
        for t in r["targets"]:
            detail = f"  {t['detail']}" if t["detail"] else ""
            typer.echo(f"  {t['classroom']:<20} {t['ring']:<8} {t['state']:<12}{detail}")


@release_app.command("cancel")
def cancel_cmd(
    rollout: RolloutId = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Stop a rollout for good (classrooms already updated stay on its release)."""
    with open_db(state_dir, database)() as db:
        try:
            row = store.cancel(db, rollout)
        except (InvalidRequest, NotFound) as err:
            fail(str(err))
        typer.echo(f"rollout {row.id} cancelled at ring {row.ring}")
