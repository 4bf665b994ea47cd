"""The router on a real PostgreSQL: a command routed the moment an agent registers reaches
it. A NOTIFY sent before the holder's LISTEN is lost, so registration waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pg_server import PgServer

from controller.cluster import routing
from controller.cluster.routing import Router
from protocols import envelope
from protocols.messages import ActionResult, AgentAction, Body


class _Hub:
    """The holder's hub: answers any action at once (a fake behind the hub's two calls)."""

    def __init__(self) -> None:
        self.asked: list[Body] = []

    async def request(self, classroom_id: str, body: Body, timeout: float) -> envelope.Envelope:
        self.asked.append(body)
        return envelope.make(ActionResult(action="doctor", ok=True, output=classroom_id), "a")

    async def send(self, classroom_id: str, body: Body, correlation_id: str | None = None) -> str:
        self.asked.append(body)
        return "sent"


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def _ignore(event: dict[str, Any]) -> None:
    return None


async def test_a_command_routed_right_after_hold_and_held_reaches_the_agent(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listener applies new LISTENs only between waits of this long: without waiting
    # for ``held`` the request below would always be sent before the LISTEN, and lost.
    monkeypatch.setattr(routing, "LISTEN_POLL_S", 1.5)
    hub = _Hub()
    holder = Router(pg_url, "holder", hub, _ignore)  # type: ignore[arg-type]
    asker = Router(pg_url, "asker", _Hub(), _ignore)  # type: ignore[arg-type]
    await holder.start()
    await asker.start()
    try:
        await asyncio.wait_for(holder.listening.wait(), 10)
        await asyncio.wait_for(asker.listening.wait(), 10)
        await asyncio.sleep(0.2)  # both listeners are inside their 1.5 s wait
        holder.hold("room-1")
        assert await holder.held("room-1", timeout=5.0)
        reply = await asker.request("room-1", AgentAction(action="doctor"), timeout=3.0)
        assert isinstance(reply.body, ActionResult) and reply.body.output == "room-1"
        assert len(hub.asked) == 1
        # Released: ``held`` says so at once rather than waiting out its timeout.
        holder.release("room-1")
        assert not await holder.held("room-1", timeout=5.0)
    finally:
        await holder.stop()
        await asker.stop()


async def test_held_gives_up_when_the_database_does_not_answer() -> None:
    router = Router("postgresql://nobody@127.0.0.1:1/none", "lonely", _Hub(), _ignore)  # type: ignore[arg-type]
    await router.start()
    try:
        router.hold("room-1")
        assert not await router.held("room-1", timeout=0.5)
    finally:
        await router.stop()
