"""Delivery channels: DingTalk and WeCom (企业微信) group robots, and e-mail over SMTP.

Every send has a timeout and raises ``DeliveryError`` with what went wrong; the
dispatcher retries with backoff. SMTP uses the standard library's ``smtplib`` in a worker
thread (no extra dependency, and the event loop never waits on it)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp

TIMEOUT_S = 10.0


class DeliveryError(Exception):
    """A channel did not take a message: the robot or mail server refused, or was not
    reachable in time."""


class RateLimited(DeliveryError):
    """A group robot refused because it had taken its messages for the minute (DingTalk
    errcode 130101, WeCom 45009): not a failing channel, the message waits."""

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# The robots' answers that mean "too many messages this minute".
RATE_LIMIT_CODES = frozenset({130101, 45009})


@dataclass(frozen=True)
class Message:
    """One message to send: a short title, the plain text and a Markdown rendering."""

    title: str
    text: str
    markdown: str


class Channel(Protocol):
    """Sends a message to one subscription's recipients."""

    async def send(self, config: Mapping[str, Any], message: Message) -> None:
        """Deliver, or raise ``DeliveryError``."""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: HMAC-SHA256 keyed by the secret over
    "timestamp\\nsecret", base64, then URL-encoded."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode())


def signed_dingtalk_url(webhook: str, secret: str, timestamp_ms: int) -> str:
    """The webhook with ``&timestamp=..&sign=..`` appended (unchanged without a secret)."""
    if not secret:
        return webhook
    return f"{webhook}&timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


async def _post_robot(url: str, body: dict[str, Any], what: str) -> None:
    """POST a robot's JSON; both robots answer ``{"errcode": 0}`` on success."""
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, json=body) as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise DeliveryError(f"{what} answered HTTP {response.status}: {text[:200]}")
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                raise DeliveryError(f"{what} answered non-JSON: {text[:200]}") from None
    except (aiohttp.ClientError, TimeoutError) as err:
        raise DeliveryError(f"{what} not reachable: {type(err).__name__}: {err}") from err
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code != 0:
        message = answer.get("errmsg") if isinstance(answer, dict) else answer
        if code in RATE_LIMIT_CODES:
            raise RateLimited(f"{what} is over its rate limit: errcode {code}, {message}")
        raise DeliveryError(f"{what} refused the message: errcode {code}, {message}")


class DingTalkChannel:
    """A DingTalk group robot (钉钉群机器人), signed when it has a secret."""

    def __init__(self, clock_ms: Any = None) -> None:
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    async def send(self, config: Mapping[str, Any], message: Message) -> None:
        """POST a Markdown message to the robot."""
        url = signed_dingtalk_url(
            str(config["webhook"]), str(config.get("secret") or ""), self._clock_ms()
        )
        body = {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": message.markdown},
        }
        await _post_robot(url, body, "DingTalk robot")


class WeComChannel:
    """A WeCom group robot (企业微信群机器人): the key in its URL is its credential."""

    async def send(self, config: Mapping[str, Any], message: Message) -> None:
        """POST a text or Markdown message to the robot."""
        if config.get("msgtype", "markdown") == "text":
            body: dict[str, Any] = {"msgtype": "text", "text": {"content": message.text}}
        else:
            body = {"msgtype": "markdown", "markdown": {"content": message.markdown}}
        await _post_robot(str(config["webhook"]), body, "WeCom robot")


def _send_mail(config: Mapping[str, Any], message: Message) -> None:
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = str(config["from"])
    mail["To"] = ", ".join(config["to"])
    mail.set_content(message.text)
    host, port = str(config["host"]), int(config["port"])
    security = config.get("security", "starttls")
    smtp: smtplib.SMTP
    if security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if config.get("username"):
            smtp.login(str(config["username"]), str(config.get("password") or ""))
        smtp.send_message(mail)


class EmailChannel:
    """E-mail over SMTP (smtplib in a worker thread)."""

    async def send(self, config: Mapping[str, Any], message: Message) -> None:
        """Send one mail to the subscription's addresses."""
        try:
            await asyncio.to_thread(_send_mail, config, message)
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(
                f"mail server {config.get('host')}:{config.get('port')}: "
                f"{type(err).__name__}: {err}"
            ) from err


def default_channels() -> dict[str, Channel]:
    """The channel of each name."""
    return {"dingtalk": DingTalkChannel(), "wecom": WeComChannel(), "email": EmailChannel()}
