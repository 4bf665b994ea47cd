"""Alerts reach people: a raise becomes one message at real peers (a DingTalk robot that
checks the signature, a WeCom robot, an SMTP server); flapping, quiet hours, escalation
and a failing channel behave as the subscription says. Time is the tests' clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from notify_fixtures import T0, Clock, subscribe
from peers.robot_webhook import RobotReceiver
from peers.smtp_inbox import SmtpInbox
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.alerts import acknowledge, record_heartbeat_alerts
from controller.auth.scope import Scope
from controller.db.models import AlertState, NotifyOutbox
from controller.notify.dispatcher import NotifyDispatcher
from controller.notify.store import channel_status

pytestmark = pytest.mark.timeout(30)

CAMERA_LOST = {"devices": {"camera": {"state": "lost", "detail": "USB unplugged"}}}
DISK_FULL = {"disk_pct": 97.0, "disk_free_bytes": 1024**3}


def beat(
    db: sessionmaker[Session], health: dict[str, object], at: object, room: str = "city-101"
) -> None:
    with db() as s:
        record_heartbeat_alerts(s, room, health, at)  # type: ignore[arg-type]
        s.commit()


def dingtalk(robot: RobotReceiver, **kw: object) -> dict[str, object]:
    return {"webhook": robot.dingtalk_url, "secret": robot.secret, **kw}


async def test_camera_lost_reaches_dingtalk_wecom_and_email_once(
    db: sessionmaker[Session], robot: RobotReceiver, inbox: SmtpInbox
) -> None:
    subscribe(db, "dingtalk", dingtalk(robot))
    subscribe(db, "wecom", {"webhook": robot.wecom_url, "msgtype": "text"})
    email = {
        "host": "127.0.0.1",
        "port": inbox.port,
        "security": "none",
        "from": "alerts@county.edu.cn",
        "to": ["tech@city.edu.cn"],
    }
    subscribe(db, "email", email)
    subscribe(db, "dingtalk", dingtalk(robot), school="village")  # another school's
    clock = Clock()
    notifier = NotifyDispatcher(db, clock=clock)

    beat(db, CAMERA_LOST, T0)
    assert await notifier.run_once() == 3
    assert robot.refused == []
    assert sorted(m.robot for m in robot.messages) == ["dingtalk", "wecom"]
    for text in [m.text for m in robot.messages] + [inbox.messages[0].get_content()]:
        assert "city" in text and "一楼录播室 (city-101)" in text
        assert "设备丢失" in text and "device_lost:camera" in text and "USB unplugged" in text
        assert "2026-03-02 08:00 (Asia/Shanghai)" in text
        assert "处理 To do" in text and "check its cable and power" in text
    assert "严重 Critical" in str(inbox.messages[0]["Subject"])
    assert inbox.recipients == [["tech@city.edu.cn"]]

    # The camera stays lost for many heartbeats: no more messages.
    for n in range(1, 6):
        clock.now = T0 + timedelta(seconds=2 * n)
        beat(db, CAMERA_LOST, clock.now)
        assert await notifier.run_once() == 0
    assert len(robot.messages) == 2 and len(inbox.messages) == 1


async def test_flapping_camera_sends_once_within_the_hold_down(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    subscribe(db, "dingtalk", dingtalk(robot), hold_down_min=10)
    clock = Clock()
    notifier = NotifyDispatcher(db, clock=clock)
    for minute in range(0, 10, 2):  # lost, back, lost, back ... every minute for 10 min
        clock.now = T0 + timedelta(minutes=minute)
        beat(db, CAMERA_LOST, clock.now)
        await notifier.run_once()
        clock.now += timedelta(minutes=1)
        beat(db, {}, clock.now)
        await notifier.run_once()
    assert len(robot.messages) == 1
    with db() as s:
        held = s.scalars(select(NotifyOutbox).where(NotifyOutbox.state == "held_down")).all()
        assert len(held) == 4
    clock.now = T0 + timedelta(minutes=12)  # past the hold-down: a new raise is news
    beat(db, CAMERA_LOST, clock.now)
    assert await notifier.run_once() == 1


async def test_quiet_hours_hold_warnings_until_morning_but_not_critical(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    subscribe(
        db,
        "dingtalk",
        dingtalk(robot),
        min_severity="info",
        quiet_start="22:00",
        quiet_end="07:00",
    )
    night = T0 + timedelta(hours=15)  # 23:00 in Beijing
    clock = Clock(night)
    notifier = NotifyDispatcher(db, clock=clock)
    beat(db, DISK_FULL, night)
    assert await notifier.run_once() == 0
    beat(db, {**DISK_FULL, **CAMERA_LOST}, night)  # the camera too: that is critical
    assert await notifier.run_once() == 1
    assert "device_lost:camera" in robot.messages[0].text
    clock.now = T0 + timedelta(hours=22, minutes=59)  # 06:59
    assert await notifier.run_once() == 0
    clock.now = T0 + timedelta(hours=23)  # 07:00: the disk warning goes
    assert await notifier.run_once() == 1
    assert "磁盘将满" in robot.messages[1].text and "disk_low" in robot.messages[1].text


async def test_unacknowledged_alert_escalates_to_the_county(
    db: sessionmaker[Session], robot: RobotReceiver, inbox: SmtpInbox
) -> None:
    subscribe(db, "dingtalk", dingtalk(robot))  # the school's technicians
    county = {
        "host": "127.0.0.1",
        "port": inbox.port,
        "security": "none",
        "from": "alerts@county.edu.cn",
        "to": ["duty@county.edu.cn"],
    }
    subscribe(db, "email", county, school=None, escalation=True, escalate_after_min=15)
    clock = Clock()
    notifier = NotifyDispatcher(db, clock=clock)
    beat(db, CAMERA_LOST, T0)
    beat(db, CAMERA_LOST, T0, room="village-201")
    assert await notifier.run_once() == 1  # the city school's robot; the county waits
    with db() as s:
        village = s.scalar(select(AlertState).where(AlertState.classroom_id == "village-201"))
        assert village is not None
        acknowledge(s, str(village.id), "village-tech", T0 + timedelta(minutes=5))
    clock.now = T0 + timedelta(minutes=14)
    assert await notifier.run_once() == 0 and inbox.messages == []
    clock.now = T0 + timedelta(minutes=15)
    assert await notifier.run_once() == 1
    [mail] = inbox.messages
    assert "升级 Escalated" in str(mail["Subject"]) and "city-101" in mail.get_content()
    assert "not acknowledged within 15 minutes" in mail.get_content()
    clock.now = T0 + timedelta(minutes=30)
    assert await notifier.run_once() == 0  # escalated once per raise


async def test_failing_channel_is_retried_visible_and_survives_a_restart(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    sub = subscribe(db, "dingtalk", dingtalk(robot))
    wrong = subscribe(db, "dingtalk", dingtalk(robot, secret="SECnot-the-robots"), name="wrong")
    clock = Clock()
    notifier = NotifyDispatcher(db, clock=clock)
    robot.fail = True
    beat(db, CAMERA_LOST, T0)
    assert await notifier.run_once() == 0
    with db() as s:
        status = {c["id"]: c for c in channel_status(s, Scope())["channels"]}
    assert status[sub]["failing"] and "HTTP 500" in status[sub]["last_error"]
    assert status[sub]["failing_since"] == T0.isoformat() and status[sub]["pending"] == 1

    robot.fail = False
    clock.now = T0 + timedelta(seconds=2)  # inside the first backoff: not tried yet
    assert await notifier.run_once() == 0
    # A restart: a new dispatcher finds the message in the outbox.
    restarted = NotifyDispatcher(db, clock=clock)
    clock.now = T0 + timedelta(seconds=6)
    assert await restarted.run_once() == 1
    with db() as s:
        status = {c["id"]: c for c in channel_status(s, Scope())["channels"]}
    assert not status[sub]["failing"] and status[sub]["last_sent_at"] == clock.now.isoformat()
    # The robot refuses a wrong signature, and says so where the dashboard shows it.
    assert status[wrong]["failing"] and "sign not match" in status[wrong]["last_error"]
    assert len(robot.messages) == 1


async def test_settled_messages_are_pruned_after_30_days(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    subscribe(db, "dingtalk", dingtalk(robot))
    clock = Clock()
    notifier = NotifyDispatcher(db, clock=clock)
    beat(db, CAMERA_LOST, T0)
    assert await notifier.run_once() == 1
    beat(db, {}, T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(days=31)
    fresh = NotifyDispatcher(db, clock=clock)
    await fresh.run_once()
    with db() as s:
        assert s.scalars(select(NotifyOutbox)).all() == []


async def test_at_750_the_technician_is_told_the_8_oclock_room_is_offline(
    db: sessionmaker[Session], robot: RobotReceiver
) -> None:
    from controller.db.models import Lesson

    subscribe(db, "dingtalk", dingtalk(robot), min_severity="critical")
    with db() as s:
        s.add(
            Lesson(
                id="L8",
                lead_classroom_id="city-101",
                start_at=T0,
                end_at=T0 + timedelta(minutes=40),
                created_at=T0 - timedelta(days=1),
            )
        )
        s.commit()
    clock = Clock(T0 - timedelta(hours=2))  # 06:00: the PC is off, no lesson near
    notifier = NotifyDispatcher(db, clock=clock, online=lambda: [])
    assert await notifier.run_once() == 0
    clock.now = T0 - timedelta(minutes=10)  # 07:50
    assert await notifier.run_once() == 1
    text = robot.messages[0].text
    assert "教室主机离线" in text and "offline" in text and "lesson L8 starts" in text
    assert "2026-03-02 07:50 (Asia/Shanghai)" in text
