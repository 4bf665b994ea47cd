"""One Janus instance over HTTP: its API's ``info``, its admin API, and VideoRoom requests
sent through the admin API's ``message_plugin`` (no session or handle to keep alive)."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import aiohttp

from controller.media_plane.config import JanusInstance
from controller.media_plane.exceptions import (
    JanusRefused,
    JanusUnreachable,
    VideoRoomError,
)

VIDEOROOM = "janus.plugin.videoroom"
MAX_ANSWER_BYTES = 4 * 1024 * 1024
UNAUTHORIZED = 403  # Janus's JANUS_ERROR_UNAUTHORIZED


class JanusClient:
    """Requests to one Janus instance, each bounded by ``timeout_s``; errors name the
    instance and the setting (api_url, admin_url, admin_secret) to check."""

    def __init__(self, instance: JanusInstance, timeout_s: float) -> None:
        self.instance = instance
        self.timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP connection pool."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def stop(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def info(self) -> dict[str, Any]:
        """The API's ``server_info`` (name, version, plugins)."""
        answer = await self._post("api_url", self.instance.api_url, {"janus": "info"})
        if answer.get("janus") != "server_info":
            raise self._not_endpoint("api_url", answer)
        return answer

    async def admin(self, request: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """One admin API request with the admin secret; the ``success`` answer."""
        body = {**(fields or {}), "janus": request, "admin_secret": self.instance.admin_secret}
        answer = await self._post("admin_url", self.instance.admin_url, body)
        if answer.get("janus") == "error":
            error = answer.get("error") or {}
            if error.get("code") == UNAUTHORIZED:
                raise JanusRefused(
                    self.instance.name,
                    f"admin_secret refused by {self.instance.admin_url} — check "
                    f"{self.instance.setting('admin_secret')} (janus.jcfg general.admin_secret)",
                )
            raise self._not_endpoint("admin_url", answer)
        if answer.get("janus") != "success":
            raise self._not_endpoint("admin_url", answer)
        return answer

    async def videoroom(self, body: dict[str, Any]) -> dict[str, Any]:
        """A VideoRoom request through the admin API; its plugin answer, or VideoRoomError."""
        answer = await self.admin("message_plugin", {"plugin": VIDEOROOM, "request": body})
        response = answer.get("response")
        if not isinstance(response, dict):
            raise self._not_endpoint("admin_url", answer)
        if "error_code" in response or "error" in response:
            raise VideoRoomError(
                self.instance.name,
                str(body.get("request")),
                int(response.get("error_code", 0)),
                str(response.get("error", "no reason given")),
            )
        return response

    async def _post(self, setting: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("JanusClient used before start()")
        body = {**body, "transaction": secrets.token_hex(8)}
        where = f"{setting} {url}"
        check = self.instance.setting(setting)
        try:
            async with self._http.post(url, json=body) as resp:
                if resp.status != 200:
                    raise JanusRefused(
                        self.instance.name,
                        f"{where} answered HTTP {resp.status}, not as the Janus "
                        f"{'admin ' if setting == 'admin_url' else ''}API — check {check} "
                        f"(its port and path, {'/admin' if setting == 'admin_url' else '/janus'}"
                        " by default)",
                    )
                raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError as err:
            raise JanusUnreachable(
                self.instance.name,
                f"{where} did not answer within {self.timeout_s:g} s — is janus running and "
                f"not overloaded? check {check}",
            ) from err
        except aiohttp.ClientError as err:
            raise JanusUnreachable(
                self.instance.name,
                f"{where} unreachable ({_reason(err)}) — is janus running, with its HTTP "
                f"transport listening there? check {check}",
            ) from err
        try:
            if len(raw) > MAX_ANSWER_BYTES:
                raise ValueError("answer too large")
            answer = _json(raw)
        except ValueError as err:
            raise JanusRefused(
                self.instance.name, f"{where} answered something that is not Janus JSON — {check}"
            ) from err
        return answer

    def _not_endpoint(self, setting: str, answer: dict[str, Any]) -> JanusRefused:
        error = answer.get("error") or {}
        said = error.get("reason") or answer.get("janus")
        other = "API" if setting == "admin_url" else "admin API"
        return JanusRefused(
            self.instance.name,
            f"{setting} {getattr(self.instance, setting)} answered {said!r}: is it the "
            f"{other}? check {self.instance.setting(setting)}",
        )


def _json(raw: bytes) -> dict[str, Any]:
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _reason(err: aiohttp.ClientError) -> str:
    if isinstance(err, aiohttp.ClientConnectorError):
        number = err.os_error.errno
        return os.strerror(number).lower() if number else str(err.os_error)
    return type(err).__name__
