"""``classroom-controller media-plane check``: each Janus instance's health and load, as
the controller would find them at start-up."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Annotated

import typer

from controller.common.cli_common import fail
from controller.media_plane.config import exposed_secrets, load_config
from controller.media_plane.exceptions import ConfigError
from controller.media_plane.startup import check_all

media_plane_app = typer.Typer(
    help="The media plane: built-in relay or Janus instances.", no_args_is_help=True
)


@media_plane_app.command("check")
def check_cmd(
    config: Annotated[pathlib.Path, typer.Option("--config", help="The media plane's TOML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Reach every Janus instance's API and admin API; exit 1 if any is down."""
    try:
        cfg = load_config(config)
    except ConfigError as err:
        fail(str(err))
    warning = exposed_secrets(config, cfg)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    checks = asyncio.run(check_all(cfg))
    down = [c for c in checks if not c.ok]
    if as_json:
        doc = {"backend": cfg.backend, "instances": [c.document() for c in checks]}
        typer.echo(json.dumps(doc, ensure_ascii=False))
    else:
        typer.echo(f"backend: {cfg.backend}")
        if not checks:
            typer.echo("no Janus instances configured: lessons use the built-in relay")
        for c in checks:
            typer.echo(c.line())
    if down:
        fail(f"{len(down)} of {len(checks)} Janus instance(s) down", 1)
