"""Sending one message over a channel, within each group robot's rate limit.

A DingTalk group robot (钉钉群机器人) takes at most 20 messages a minute and refuses the
rest (errcode 130101); a WeCom robot (企业微信群机器人) the same (errcode 45009). The
``RobotRateLimit`` keeps each robot, by its webhook, under that: a message it has no room
for is not sent but held, and the caller (the dispatcher) leaves it in the outbox until the
time it answers. Sends are counted whatever their outcome: the robot counts them too."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from controller.db.session import utcnow
from controller.notify.channels import (
    TIMEOUT_S,
    Channel,
    DeliveryError,
    Message,
    RateLimited,
    default_channels,
)

# Messages a minute each robot takes (the vendors' documented limits).
ROBOT_LIMITS: dict[str, int] = {"dingtalk": 20, "wecom": 20}
WINDOW = timedelta(minutes=1)
# Sends this close to the window's edge still count: our clock and the robot's differ.
MARGIN = timedelta(seconds=1)
# A robot that refused for its rate limit (another sender shares it) is left this long.
REFUSED_WAIT = WINDOW + MARGIN


def robot_key(channel: str, config: Mapping[str, Any]) -> str | None:
    """The robot a message goes to (its webhook, which names it), if its channel has a
    rate limit; None for e-mail."""
    if channel not in ROBOT_LIMITS:
        return None
    return f"{channel} {config.get('webhook', '')}"


class RobotRateLimit:
    """At most ``ROBOT_LIMITS[channel]`` sends to one robot in any ``WINDOW`` (plus
    ``MARGIN``), counted in this process; on the event loop only."""

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self._limits = dict(ROBOT_LIMITS if limits is None else limits)
        self._sent: dict[str, deque[datetime]] = {}
        self._blocked: dict[str, datetime] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._sent.setdefault(key, deque())
        while times and times[0] <= now - WINDOW - MARGIN:
            times.popleft()
        return times

    def take(self, channel: str, config: Mapping[str, Any], now: datetime) -> datetime | None:
        """Count a send now and answer None, or, with no room, answer when there is."""
        key = robot_key(channel, config)
        if key is None:
            return None
        blocked = self._blocked.get(key)
        if blocked is not None:
            if blocked > now:
                return blocked
            del self._blocked[key]
        times = self._recent(key, now)
        if len(times) >= self._limits[channel]:
            return times[0] + WINDOW + MARGIN
        times.append(now)
        return None

    def refused(self, channel: str, config: Mapping[str, Any], now: datetime) -> datetime:
        """The robot said it is over its limit: hold it for a whole window; answers until."""
        key = robot_key(channel, config) or channel
        until = now + REFUSED_WAIT
        self._blocked[key] = until
        return until

    def seed(self, sends: Iterable[tuple[str, Mapping[str, Any], datetime]]) -> None:
        """Count sends made before this process started (from the outbox), oldest first."""
        for channel, config, at in sorted(sends, key=lambda s: s[2]):
            key = robot_key(channel, config)
            if key is not None:
                self._sent.setdefault(key, deque()).append(at)

    def forget_idle(self, now: datetime) -> None:
        """Drop robots with no send in the window (the map does not grow for ever)."""
        for key in [k for k in self._sent if not self._recent(k, now)]:
            del self._sent[key]


class Sender:
    """The channels and the robots' rate limit, shared by the dispatcher and the API's
    test message so both count against the same robots."""

    def __init__(
        self,
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], datetime] = utcnow,
        limit: RobotRateLimit | None = None,
    ) -> None:
        self._channels = dict(channels or default_channels())
        self.clock = clock
        self.limit = limit or RobotRateLimit()

    async def send(self, channel: str, config: Mapping[str, Any], message: Message) -> None:
        """Send now (the caller took room in ``limit``); ``DeliveryError`` if not
        delivered, ``RateLimited`` (one of them) if the robot refused for its limit."""
        impl = self._channels.get(channel)
        if impl is None:
            raise DeliveryError(f"no channel {channel!r} in this controller")
        try:
            await asyncio.wait_for(impl.send(config, message), TIMEOUT_S + 5)
        except TimeoutError as err:
            raise DeliveryError(f"{channel} did not answer in {TIMEOUT_S + 5:.0f} s") from err
        except RateLimited:
            self.limit.refused(channel, config, self.clock())
            raise

    async def send_now(self, channel: str, config: Mapping[str, Any], message: Message) -> None:
        """Send one message at once if the robot has room (a test message), else
        ``RateLimited`` saying when to try again."""
        now = self.clock()
        until = self.limit.take(channel, config, now)
        if until is not None:
            seconds = max(1, int((until - now).total_seconds() + 0.999))
            raise RateLimited(
                f"the {channel} robot has taken its {ROBOT_LIMITS[channel]} messages this "
                f"minute; try again in {seconds} s",
                retry_after_s=seconds,
            )
        await self.send(channel, config, message)
