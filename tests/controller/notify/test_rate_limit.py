"""A DingTalk group robot takes at most 20 messages a minute: more alerts than that are
held in the outbox and go, in order and once each, as the minute allows; none is failed
or lost, not across a restart either. The robot (a real loopback peer) refuses as
DingTalk does past its limit; it and the dispatcher share the test's clock."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from notify_fixtures import T0, Clock, subscribe
from peers.robot_webhook import RobotReceiver
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import record_heartbeat_alerts
from controller.auth.scope import Scope
from controller.db.models import NotifyOutbox
from controller.notify.api import TEST_TEXT
from controller.notify.channels import Message, RateLimited
from controller.notify.dispatcher import NotifyDispatcher
from controller.notify.store import channel_status

pytestmark = pytest.mark.timeout(30)

CAMERAS = 25


def _lose_cameras(db: sessionmaker[Session]) -> None:
    devices = {f"camera-{n:02d}": {"state": "lost", "detail": "unplugged"} for n in range(CAMERAS)}
    with db() as s:
        record_heartbeat_alerts(s, "city-101", {"devices": devices}, T0)
        s.commit()


def _cameras(robot: RobotReceiver) -> list[str]:
    found = [re.search(r"camera-\d\d", m.text) for m in robot.messages]
    return [m.group() for m in found if m is not None]


def _at_most_per_minute(robot: RobotReceiver, limit: int) -> bool:
    times = [m.sent_at for m in robot.messages]
    return all(sum(1 for u in times if t <= u <= t + 60) <= limit for t in times)


async def test_25_alerts_reach_a_dingtalk_robot_20_a_minute_in_order_once_each(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    clock = Clock()
    robot.clock = lambda: clock.now.timestamp()
    sub = subscribe(
        db, "dingtalk", {"webhook": robot.dingtalk_url, "secret": robot.secret}, min_severity="info"
    )
    notifier = NotifyDispatcher(db, clock=clock)
    _lose_cameras(db)
    assert await notifier.run_once() == 20
    assert notifier.held == CAMERAS - 20
    with db() as s:
        doc = channel_status(s, Scope())["channels"][0]
    assert doc["id"] == sub and not doc["failing"] and doc["pending"] == CAMERAS - 20

    sent = 20
    for second in range(5, 181, 5):
        clock.now = T0 + timedelta(seconds=second)
        if second == 30:  # a restart: the robot's minute is read back from the outbox
            notifier = NotifyDispatcher(db, clock=clock)
        sent += await notifier.run_once()
    assert sent == CAMERAS and robot.refused == []
    assert _at_most_per_minute(robot, 20)
    assert _cameras(robot) == [f"camera-{n:02d}" for n in range(CAMERAS)]  # in order, once
    assert notifier.failures == 0
    with db() as s:
        rows = s.scalars(select(NotifyOutbox)).all()
        assert {r.state for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}
        doc = channel_status(s, Scope())["channels"][0]
    assert not doc["failing"] and doc["pending"] == 0


async def test_a_robot_that_says_it_is_full_is_waited_for_not_failed(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    """Another sender shares the robot, so it refuses before our count is reached."""
    clock = Clock()
    robot.clock = lambda: clock.now.timestamp()
    robot.per_minute = 8
    subscribe(
        db, "dingtalk", {"webhook": robot.dingtalk_url, "secret": robot.secret}, min_severity="info"
    )
    notifier = NotifyDispatcher(db, clock=clock)
    _lose_cameras(db)
    assert await notifier.run_once() == 8
    for second in range(5, 301, 5):
        clock.now = T0 + timedelta(seconds=second)
        await notifier.run_once()
    assert _cameras(robot) == [f"camera-{n:02d}" for n in range(CAMERAS)]
    assert _at_most_per_minute(robot, 8) and notifier.failures == 0
    with db() as s:
        doc = channel_status(s, Scope())["channels"][0]
    assert not doc["failing"] and doc["pending"] == 0


async def test_a_test_message_counts_against_the_same_minute(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    """The console's test message goes through the dispatcher's count: with the robot's
    minute used up it is refused saying when to try again, and not sent."""
    clock = Clock()
    robot.clock = lambda: clock.now.timestamp()
    config = {"webhook": robot.dingtalk_url, "secret": robot.secret}
    subscribe(db, "dingtalk", config, min_severity="info")
    notifier = NotifyDispatcher(db, clock=clock)
    _lose_cameras(db)
    assert await notifier.run_once() == 20
    message = Message("test", TEST_TEXT, TEST_TEXT)
    with pytest.raises(RateLimited, match=r"try again in 61 s") as refused:
        await notifier.sender.send_now("dingtalk", config, message)
    assert refused.value.retry_after_s == 61 and len(robot.messages) == 20
    clock.now = T0 + timedelta(seconds=61)
    await notifier.sender.send_now("dingtalk", config, message)
    assert robot.messages[-1].text == TEST_TEXT and robot.refused == []
