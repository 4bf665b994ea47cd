"""``classroom-controller notify …``: each alert channel's health, and a test message
through one subscription (to check a robot's URL and secret, or a mail server)."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Annotated

import typer

from controller.auth.scope import Scope
from controller.common.cli_common import DEFAULT_STATE, Database, StateDir, fail, open_db
from controller.common.errors import NotFound
from controller.notify.channels import DeliveryError, Message, default_channels
from controller.notify.store import channel_status, get_subscription

notify_app = typer.Typer(help="Alert notifications (告警通知).", no_args_is_help=True)


@notify_app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """One line per channel: failing or not, since when, its last error."""
    with open_db(state_dir, database)() as db:
        doc = channel_status(db, Scope())
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    if not doc["channels"]:
        typer.echo("no subscriptions: add one with POST /api/v1/notify/subscriptions")
    for c in doc["channels"]:
        where = c["school"] or "county"
        state = f"FAILING since {c['failing_since']}: {c['last_error']}" if c["failing"] else "ok"
        typer.echo(f"{c['id']:>4} {c['channel']:<8} {where:<20} {c['name']:<24} {state}")
    if doc["failing"]:
        fail(f"{doc['failing']} channel(s) failing: nobody is told of alerts through them", 1)


@notify_app.command("test")
def test_cmd(
    subscription: Annotated[int, typer.Argument(help="Subscription id (see 'notify status').")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Send a test message through a subscription's channel now."""
    with open_db(state_dir, database)() as db:
        try:
            sub = get_subscription(db, Scope(), str(subscription))
        except NotFound as err:
            fail(str(err))
        channel, config = sub.channel, dict(sub.config or {})
    text = "classbridge 告警通知测试 / alert notification test: 此通道可用 / this channel works"
    message = Message(title="classbridge 测试 test", text=text, markdown=f"### {text}")
    try:
        asyncio.run(default_channels()[channel].send(config, message))
    except DeliveryError as err:
        fail(f"not delivered: {err}", 1)
    typer.echo(f"sent over {channel} to subscription {subscription}")
