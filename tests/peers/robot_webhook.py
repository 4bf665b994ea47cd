"""Group robots for tests: a real HTTP server on loopback that takes DingTalk and WeCom
robot webhooks, as the vendors' servers do.

It checks on its own (it does not import the controller's signing code) what the real
robots check: DingTalk's ``timestamp`` and ``sign`` (HMAC-SHA256 over "timestamp\\nsecret",
base64, URL-encoded) against the robot's secret, and WeCom's ``key``; a wrong one is
answered as the vendors answer it (HTTP 200 with a non-zero ``errcode``).

    async with RobotReceiver(secret="SEC123") as robot:      # 127.0.0.1, ephemeral port
        url = robot.dingtalk_url                              # or robot.wecom_url
        ...
        assert robot.messages[0].text.startswith("...")

Set ``fail`` to answer every post with HTTP 500 (a robot or proxy that is down).

Like the real DingTalk robot, it takes at most ``per_minute`` (20) messages in any minute
and refuses the rest with errcode 130101; ``clock`` (seconds) is the test's, so a test
need not wait a minute. Each message's ``sent_at`` is that clock at arrival.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCESS_TOKEN = "test-access-token"
WECOM_KEY = "test-wecom-key"


@dataclass
class Received:
    """One message a robot took."""

    robot: str  # dingtalk | wecom
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival
    sent_at: float = 0.0  # the robot's clock on arrival

    @property
    def text(self) -> str:
        """The message's text, whichever msgtype it came as."""
        kind = self.body.get("msgtype", "")
        part = self.body.get(kind, {})
        return str(part.get("text") or part.get("content") or "")


@dataclass
class RobotReceiver:
    """DingTalk and WeCom robots on one loopback port."""

    secret: str = "SECtest-secret"
    fail: bool = False
    messages: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    per_minute: int = 20
    clock: Callable[[], float] = time.time

    async def __aenter__(self) -> RobotReceiver:
        app = web.Application()
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    @property
    def dingtalk_url(self) -> str:
        """The DingTalk robot's webhook (without signature: the sender adds it)."""
        return f"http://127.0.0.1:{self.port}/robot/send?access_token={ACCESS_TOKEN}"

    @property
    def wecom_url(self) -> str:
        """The WeCom robot's webhook, its key in the URL."""
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={WECOM_KEY}"

    async def _answer(self, robot: str, request: web.Request, problem: str | None) -> web.Response:
        if self.fail:
            return web.Response(status=500, text="robot down")
        if problem is not None:
            self.refused.append(problem)
            return web.json_response({"errcode": 310000, "errmsg": problem})
        now = self.clock()
        recent = [m for m in self.messages if m.robot == robot and now - m.sent_at < 60]
        if len(recent) >= self.per_minute:
            code = 130101 if robot == "dingtalk" else 45009
            problem = f"send too fast, exceed {self.per_minute} times per minute"
            self.refused.append(problem)
            return web.json_response({"errcode": code, "errmsg": problem})
        body = await request.json()
        self.messages.append(Received(robot, body, time.monotonic(), now))
        self.arrived.set()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _dingtalk(self, request: web.Request) -> web.Response:
        q = request.query
        problem = None
        if q.get("access_token") != ACCESS_TOKEN:
            problem = "token is not exist"
        else:
            stamp, sign = q.get("timestamp", ""), q.get("sign", "")
            expected = base64.b64encode(
                hmac.new(
                    self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256
                ).digest()
            ).decode()
            # aiohttp's query is already URL-decoded once, as DingTalk's server decodes it.
            if not stamp or not hmac.compare_digest(sign, expected):
                problem = "sign not match"
            elif abs(time.time() * 1000 - int(stamp)) > 3600 * 1000:
                problem = "timestamp is out of range"
        return await self._answer("dingtalk", request, problem)

    async def _wecom(self, request: web.Request) -> web.Response:
        problem = None if request.query.get("key") == WECOM_KEY else "invalid webhook url"
        return await self._answer("wecom", request, problem)
