"""Releases on the controller: only wheels signed with a trusted release key are held; an
admin sets rings and starts a rollout; an agent, with its upload token, is offered the
release between lessons only, downloads it and reports; a rollback pauses the rollout at
its ring, healthy reports move it on ring by ring."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import bearer_headers, loopback_server_tls, loopback_session
from release_fixtures import build_wheel, make_key, sign_wheel
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.app.http_api import HttpApi
from controller.common.errors import InvalidRequest
from controller.db.models import Classroom, Lesson, ReleaseTarget
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.recordings import upload_tokens
from controller.recordings.uploads import UploadService
from controller.releases import store
from controller.storage.local import LocalStorage
from protocols.releases import UpdateOffer

pytestmark = pytest.mark.timeout(60)
ROOMS = {"city-1": "city", "city-2": "city", "village-1": "village"}


@pytest.fixture
def db(db_url: str) -> sessionmaker[Session]:
    migrate(db_url)
    factory = sessions(make_engine(db_url))
    with factory() as s:
        for i, (room, school) in enumerate(ROOMS.items()):
            s.add(
                Classroom(
                    id=room,
                    name=room,
                    school=school,
                    public_key=f"{i}" * 40,
                    agent_version="0.1.0",
                )
            )
        s.commit()
    return factory


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("release")
    private, public = make_key(root / "key")
    _, other_public = make_key(root / "other")
    wheel = build_wheel(root / "dist", "0.2.0")
    return {
        "wheel": wheel,
        "sig": sign_wheel(wheel, private).read_text(),
        "public": public,
        "other": other_public,
    }


def _keys(signed: dict[str, Any], name: str = "public") -> list[Any]:
    from protocols.releases import load_public_key

    return [load_public_key(signed[name].read_bytes(), name)]


def _add(db: sessionmaker[Session], signed: dict[str, Any]) -> None:
    with db() as s:
        store.add_release(
            s, signed["wheel"].name, signed["wheel"].read_bytes(), signed["sig"], _keys(signed), "t"
        )


def test_only_a_release_signed_with_a_trusted_key_is_held(
    db: sessionmaker[Session], signed: dict[str, Any]
) -> None:
    wheel = signed["wheel"]
    with db() as s:
        with pytest.raises(InvalidRequest, match="does not verify with release key"):
            store.add_release(
                s, wheel.name, wheel.read_bytes(), signed["sig"], _keys(signed, "other"), "t"
            )
        with pytest.raises(InvalidRequest, match="does not verify"):
            store.add_release(
                s, wheel.name, wheel.read_bytes() + b"x", signed["sig"], _keys(signed), "t"
            )
        with pytest.raises(InvalidRequest, match="no release public key"):
            store.add_release(s, wheel.name, wheel.read_bytes(), signed["sig"], [], "t")
        with pytest.raises(ValueError, match="not a classbridge agent wheel"):
            store.add_release(s, "evil.whl", wheel.read_bytes(), signed["sig"], _keys(signed), "t")
    _add(db, signed)
    with db() as s, pytest.raises(InvalidRequest, match="already held"):
        store.add_release(s, wheel.name, wheel.read_bytes(), signed["sig"], _keys(signed), "t")


@pytest.fixture
async def api(tmp_path: pathlib.Path, db: sessionmaker[Session]) -> AsyncIterator[str]:
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, ServerKeys.load_or_create(tmp_path), lambda: list(ROOMS))
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1"
    finally:
        await http.stop()


async def _call(
    method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    async with (
        loopback_session() as http,
        http.request(method, url, headers=headers, json=body) as resp,
    ):
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


def _agent(db: sessionmaker[Session], room: str) -> dict[str, str]:
    with db() as s:
        return {"X-Classroom": room, "Authorization": f"Bearer {upload_tokens.issue(s, room)}"}


async def test_a_rollout_goes_ring_by_ring_and_pauses_on_a_rollback(
    api: str, db: sessionmaker[Session], signed: dict[str, Any]
) -> None:
    _add(db, signed)
    admin, tech = bearer_headers(db, "admin"), bearer_headers(db, "technician")
    ring = {"scope": "classroom", "id": "city-1", "ring": "pilot"}
    assert (await _call("PUT", f"{api}/releases/rings", tech, ring))[0] == 403
    assert (await _call("PUT", f"{api}/releases/rings", admin, ring))[0] == 200
    code, doc = await _call(
        "PUT", f"{api}/releases/rings", admin, {"scope": "school", "id": "city", "ring": "mid"}
    )
    assert code == 400 and "ring 'mid': use one of pilot, early, general" in doc["error"]
    code, _ = await _call(
        "PUT", f"{api}/releases/rings", admin, {"scope": "school", "id": "village", "ring": "early"}
    )
    assert code == 200
    code, doc = await _call(
        "POST", f"{api}/releases/rollouts", admin, {"version": "0.2.0", "window_start": "7:00"}
    )
    assert code == 400 and "window start '7:00' must be HH:MM" in doc["error"], doc
    whole_day = {"version": "0.2.0", "window_start": "00:00", "window_end": "00:00"}
    code, doc = await _call("POST", f"{api}/releases/rollouts", admin, whole_day)
    assert code == 201 and doc["ring"] == "pilot", doc
    code, doc = await _call("POST", f"{api}/releases/rollouts", admin, whole_day)
    assert code == 400 and "is running" in doc["error"]

    agent = _agent(db, "city-1")
    assert (await _call("GET", f"{api}/agent/update", {"X-Classroom": "city-1"}))[0] == 401
    assert (await _call("GET", f"{api}/agent/update", agent))[0] == 204  # not yet offered
    with db() as s:
        assert store.tick(s, list(ROOMS))["offered"] == ["city-1"]
    code, offer_doc = await _call("GET", f"{api}/agent/update", agent)
    assert code == 200, offer_doc
    offer = UpdateOffer.model_validate(offer_doc)
    # Another classroom (not offered) may not fetch the wheel; the offered one may.
    other = _agent(db, "city-2")
    assert (await _call("GET", f"{api}/agent/releases/0.2.0/wheel", other))[0] == 404
    code, wheel = await _call("GET", f"{api}/agent/releases/0.2.0/wheel", agent)
    assert code == 200 and wheel == signed["wheel"].read_bytes() and len(wheel) == offer.size

    report = {"rollout_id": offer.rollout_id, "version": "0.2.0", "running_version": "0.1.0"}
    code, doc = await _call("POST", f"{api}/agent/update/report", agent, report | {"state": "ok"})
    assert code == 400 and "state" in doc["error"]
    rolled = report | {"state": "rolled_back", "detail": "health check failed (devices)"}
    assert (await _call("POST", f"{api}/agent/update/report", agent, rolled))[0] == 200
    code, status = await _call("GET", f"{api}/releases", tech)
    rollout = status["rollouts"][0]
    assert rollout["state"] == "paused" and rollout["ring"] == "pilot"
    assert "city-1 rolled back: health check failed (devices)" in rollout["paused_reason"]
    assert (await _call("GET", f"{api}/agent/update", agent))[0] == 204  # paused: no offer

    # Resumed, the classroom is offered again; healthy, the rollout moves to early.
    url = f"{api}/releases/rollouts/{offer.rollout_id}/resume"
    assert (await _call("POST", url, tech))[0] == 403
    assert (await _call("POST", url, admin))[0] == 200
    with db() as s:
        assert store.tick(s, list(ROOMS))["offered"] == ["city-1"]
    healthy = report | {
        "state": "healthy",
        "running_version": "0.2.0",
        "checks": {"registered": True, "devices": True, "clock": True},
    }
    assert (await _call("POST", f"{api}/agent/update/report", agent, healthy))[0] == 200
    with db() as s:
        assert store.tick(s, list(ROOMS))["next_ring"] == "early"
        # village-1 has a lesson in 10 minutes: not offered (never within 15 minutes).
        now = utcnow()
        s.add(
            Lesson(
                id="L-soon",
                lead_classroom_id="village-1",
                start_at=now + timedelta(minutes=10),
                end_at=now + timedelta(minutes=50),
                state="scheduled",
                created_at=now,
            )
        )
        s.commit()
        step = store.tick(s, list(ROOMS))
        assert step["offered"] == [] and "lesson L-soon starts at" in step["waiting"]["village-1"]
        target = s.get(ReleaseTarget, (offer.rollout_id, "village-1"))
        assert target is not None and target.state == "pending"


async def test_bodies_are_capped_and_checked(api: str, db: sessionmaker[Session]) -> None:
    admin = bearer_headers(db, "admin")
    async with (
        loopback_session() as http,
        http.put(f"{api}/releases/rings", headers=admin, data=b"{" + b" " * 20000 + b"}") as resp,
    ):
        assert resp.status == 413
    code, doc = await _call(
        "PUT",
        f"{api}/releases/rings",
        admin,
        {"scope": "x", "id": "a", "ring": "pilot", "extra": 1},
    )
    assert code == 400 and "unknown field(s) extra" in doc["error"]
    code, doc = await _call("POST", f"{api}/releases/rollouts", admin, {"version": "9.9"})
    assert code == 404 and "no release '9.9'" in doc["error"]
    assert (await _call("POST", f"{api}/releases/rollouts/abc/pause", admin))[0] == 404
    # An id past any integer the database holds (the fuzzer's find): 404, not 500.
    huge = f"{api}/releases/rollouts/12134128909795624960/resume"
    assert (await _call("POST", huge, admin))[0] == 404
