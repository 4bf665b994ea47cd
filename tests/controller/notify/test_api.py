"""``/api/v1/notify``: subscriptions added per school or for the county by the roles that
handle alerts, bad settings refused naming the field, secrets never answered, and each
channel's health on the dashboard."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from peers.robot_webhook import RobotReceiver
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.app.http_api import HttpApi
from controller.auth.accounts import add_user, create_api_token
from controller.db.models import AuditEntry, NotifySubscription
from controller.notify.api import TEST_TEXT
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage

pytestmark = pytest.mark.timeout(30)

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
SUB = {
    "name": "city technicians",
    "school": "city",
    "channel": "dingtalk",
    "config": {"webhook": ROBOT, "secret": "SECsupersecret"},
    "min_severity": "warning",
    "quiet_hours": {"start": "22:00", "end": "07:00"},
}


@pytest.fixture
async def api(
    tmp_path: pathlib.Path, db: sessionmaker[Session]
) -> AsyncIterator[tuple[str, sessionmaker[Session]]]:
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, ServerKeys.load_or_create(tmp_path), lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", db
    finally:
        await http.stop()


def school_headers(db: sessionmaker[Session], role: str, school: str) -> dict[str, str]:
    with db() as s:
        add_user(s, f"{role}-{school}", role, None).school = school
        s.commit()
        return {"Authorization": f"Bearer {create_api_token(s, f'{role}-{school}')}"}


async def _post(api: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    async with (
        loopback_session(headers=headers) as http,
        http.post(f"{api}/notify/subscriptions", json=body) as r,
    ):
        return r.status, await r.json()


async def test_subscriptions_added_listed_without_secrets_and_deleted(
    api: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = api
    headers = bearer_headers(db, "technician")
    status, doc = await _post(base, headers, SUB)
    assert status == 201, doc
    assert doc["config"] == {
        "webhook": "https://oapi.dingtalk.com/robot/send?***",
        "secret_set": True,
    }
    county = {
        "name": "county duty",
        "school": None,
        "channel": "wecom",
        "config": {"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K1"},
        "escalation": True,
        "escalate_after_minutes": 10,
    }
    status, doc2 = await _post(base, headers, county)
    assert status == 201, doc2
    async with loopback_session(headers=headers) as http:
        async with http.get(f"{base}/notify/subscriptions") as r:
            text = await r.text()
            assert r.status == 200 and "SECsupersecret" not in text and "abc123" not in text
            assert "key=K1" not in text
        async with http.get(f"{base}/notify/status") as r:
            status_doc = await r.json()
            assert status_doc["failing"] == 0 and len(status_doc["channels"]) == 2
        async with http.get(f"{base}/dashboard") as r:
            assert (await r.json())["notify"]["channels"][0]["name"] == "city technicians"
        async with http.delete(f"{base}/notify/subscriptions/{doc['id']}") as r:
            assert r.status == 200 and (await r.json()) == {"deleted": doc["id"]}
        async with http.get(f"{base}/notify/subscriptions/{doc['id']}") as r:
            assert r.status == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "sms"}, "'channel'"),
        ({"config": {"webhook": "ftp://x/robot/send?access_token=a"}}, "'config.webhook'"),
        ({"config": {"webhook": "https://oapi.dingtalk.com/robot/send"}}, "'config.webhook'"),
        ({"config": {"webhook": ROBOT, "secret": "plain"}}, "'config.secret'"),
        ({"min_severity": "loud"}, "'min_severity'"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "'quiet_hours.start'"),
        ({"timezone": "Mars/Olympus"}, "'timezone'"),
        ({"hold_down_minutes": -1}, "'hold_down_minutes'"),
        (
            {"channel": "email", "config": {"host": "smtp", "from": "a@b.cn", "to": ["nope"]}},
            "'config.to'",
        ),
    ],
)
async def test_bad_settings_are_refused_naming_the_field(
    api: tuple[str, sessionmaker[Session]], change: dict[str, Any], field: str
) -> None:
    base, db = api
    status, doc = await _post(base, bearer_headers(db), {**SUB, **change})
    assert status == 400 and field in doc["error"], doc


async def test_who_may_not_set_notifications_is_refused(
    api: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = api
    for role in ("inspector", "teacher"):
        status, doc = await _post(base, bearer_headers(db, role), SUB)
        assert status == 403 and "may not POST" in doc["error"], doc
    village_tech = school_headers(db, "technician", "village")
    status, doc = await _post(base, village_tech, SUB)  # the city school's: not theirs
    assert status == 403 and "outside school 'village'" in doc["error"], doc
    status, doc = await _post(base, village_tech, {**SUB, "school": None})
    assert status == 403 and "county" in doc["error"], doc
    status, doc = await _post(base, village_tech, {**SUB, "school": "village"})
    assert status == 201, doc
    status, city = await _post(base, bearer_headers(db), SUB)
    async with loopback_session(headers=village_tech) as http:
        async with http.get(f"{base}/notify/subscriptions") as r:
            assert [s["school"] for s in await r.json()] == ["village"]
        async with http.delete(f"{base}/notify/subscriptions/{city['id']}") as r:
            assert r.status == 404
    async with loopback_session() as http, http.get(f"{base}/notify/subscriptions") as r:
        assert r.status == 401


async def _patch(api: str, headers: dict[str, str], sub_id: object, body: Any) -> tuple[int, Any]:
    async with (
        loopback_session(headers=headers) as http,
        http.patch(f"{api}/notify/subscriptions/{sub_id}", json=body) as r,
    ):
        return r.status, await r.json()


async def test_a_subscription_is_edited_keeping_what_was_not_sent(
    api: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = api
    headers = bearer_headers(db, "scheduler")
    _, doc = await _post(base, headers, SUB)
    change = {
        "name": "city duty",
        "min_severity": "critical",
        "quiet_hours": None,
        "config": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=fresh777"},
    }
    status, edited = await _patch(base, headers, doc["id"], change)
    assert status == 200, edited
    assert edited["name"] == "city duty" and edited["min_severity"] == "critical"
    assert edited["quiet_hours"] is None and edited["school"] == "city"
    assert edited["config"] == {  # the secret kept: it was not sent again
        "webhook": "https://oapi.dingtalk.com/robot/send?***",
        "secret_set": True,
    }
    assert "fresh777" not in json.dumps(edited) and "SECsupersecret" not in json.dumps(edited)
    with db() as s:
        row = s.get(NotifySubscription, doc["id"])
        assert row is not None and row.config["secret"] == "SECsupersecret"
        assert row.config["webhook"].endswith("access_token=fresh777")
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action.like("PATCH%"))).all()
        assert [a.username for a in audit] == ["test-scheduler"]
    # A new channel needs its whole config.
    status, err = await _patch(base, headers, doc["id"], {"channel": "email"})
    assert status == 400 and "'config'" in err["error"], err


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"min_severity": "loud"}, "'min_severity'"),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "'quiet_hours.end'"),
        ({"config": {"secret": "plain"}}, "'config.secret'"),
        ({"escalate_after_minutes": 0}, "'escalate_after_minutes'"),
        ({"name": ""}, "'name'"),
        ({"created_by": "me"}, "created_by"),
        ({}, "nothing to change"),
    ],
)
async def test_bad_edits_are_refused_naming_the_field(
    api: tuple[str, sessionmaker[Session]], change: dict[str, Any], field: str
) -> None:
    base, db = api
    headers = bearer_headers(db)
    _, doc = await _post(base, headers, SUB)
    status, err = await _patch(base, headers, doc["id"], change)
    assert status == 400 and field in err["error"], err
    async with (
        loopback_session(headers=headers) as http,
        http.get(f"{base}/notify/subscriptions/{doc['id']}") as r,
    ):
        assert (await r.json())["min_severity"] == "warning"  # unchanged


async def test_edits_refused_outside_scope_unknown_or_oversize(
    api: tuple[str, sessionmaker[Session]],
) -> None:
    base, db = api
    admin = bearer_headers(db)
    _, city = await _post(base, admin, SUB)
    village_tech = school_headers(db, "technician", "village")
    _, village = await _post(base, village_tech, {**SUB, "school": "village"})
    # another school's: as if it did not exist
    status, err = await _patch(base, village_tech, city["id"], {"name": "mine now"})
    assert status == 404, err
    # its own, but moved to another school or to the county
    status, err = await _patch(base, village_tech, village["id"], {"school": "city"})
    assert status == 403 and "outside school 'village'" in err["error"], err
    status, err = await _patch(base, village_tech, village["id"], {"school": None})
    assert status == 403 and "county" in err["error"], err
    status, ok = await _patch(base, village_tech, village["id"], {"name": "village duty"})
    assert status == 200 and ok["name"] == "village duty", ok
    for role in ("inspector", "teacher"):
        status, err = await _patch(base, bearer_headers(db, role), city["id"], {"name": "x"})
        assert status == 403 and "may not PATCH" in err["error"], err
    for unknown in (999, "nope"):
        status, err = await _patch(base, admin, unknown, {"name": "x"})
        assert status == 404 and "GET /api/v1/notify/subscriptions" in err["error"], err
    big = {"name": "x" * (17 * 1024)}
    status, err = await _patch(base, admin, city["id"], big)
    assert status == 413 and "16384" in err["error"], err


async def test_a_test_message_reaches_the_robot_and_shows_its_health(
    api: tuple[str, sessionmaker[Session]], robot: RobotReceiver
) -> None:
    base, db = api
    headers = bearer_headers(db, "technician")
    good = {**SUB, "config": {"webhook": robot.dingtalk_url, "secret": robot.secret}}
    _, doc = await _post(base, headers, good)
    bad = {**good, "name": "wrong", "config": {**good["config"], "secret": "SECwrong"}}
    _, wrong = await _post(base, headers, bad)
    async with loopback_session(headers=headers) as http:
        async with http.post(f"{base}/notify/subscriptions/{doc['id']}/test") as r:
            body = await r.json()
            assert r.status == 200 and body["sent"] == doc["id"] and body["delivered"], body
        async with http.post(f"{base}/notify/subscriptions/{wrong['id']}/test") as r:
            body = await r.json()
            assert r.status == 200 and not body["delivered"], body
            assert "sign not match" in body["error"], body
        async with http.get(f"{base}/notify/status") as r:
            channels = {c["id"]: c for c in (await r.json())["channels"]}
    assert [m.text for m in robot.messages] == ["### " + TEST_TEXT]
    assert channels[doc["id"]]["last_sent_at"] and not channels[doc["id"]]["failing"]
    assert channels[wrong["id"]]["failing"]
    assert "sign not match" in channels[wrong["id"]]["last_error"]
    async with (
        loopback_session(headers=bearer_headers(db, "inspector")) as http,
        http.post(f"{base}/notify/subscriptions/{doc['id']}/test") as r,
    ):
        assert r.status == 403
