"""The start-up check against a real Janus: healthy, and each wrong setting named."""

from __future__ import annotations

from typing import Any

import pytest
from media_plane_fixtures import StartJanus, instance, plane_config

from controller.media_plane.startup import InstanceCheck, check_all

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]


async def check(name: str, table: dict[str, Any]) -> InstanceCheck:
    """The check of one instance configured alone (the same Janus may not be listed twice)."""
    (only,) = await check_all(plane_config({name: table}))
    return only


async def test_a_live_instance_is_healthy(start_janus: StartJanus) -> None:
    janus = await start_janus()
    good = await check("county-a", instance(janus, capacity=6))
    assert good.ok and good.version == "1.1.2" and good.rooms == 0, good
    assert good.line() == (
        "county-a             ok    Janus 1.1.2, 0 room(s), 0 participant(s), capacity 6 lesson(s)"
    )
    assert good.warnings == () and good.document()["warnings"] == []


async def test_an_instance_without_consent_checks_is_healthy_but_warned_about(
    start_janus: StartJanus,
) -> None:
    janus = await start_janus(conncheck=False)
    found = await check("county-a", instance(janus))
    assert found.ok, found
    (warning,) = found.warnings
    assert warning == (
        "janus instance 'county-a' has ice_keepalive_conncheck off: a patrol viewer whose "
        "browser vanishes keeps receiving until the lesson ends — set "
        "nat: { ice_keepalive_conncheck = true } in its janus.jcfg"
    )
    assert found.line().endswith(f"; warning: {warning}")
    assert found.document()["warnings"] == [warning]


async def test_each_wrong_setting_is_named(start_janus: StartJanus) -> None:
    janus = await start_janus()
    secret = await check("county-a", instance(janus, admin_secret="not-the-secret"))
    assert not secret.ok
    assert secret.problem == (
        f"janus instance 'county-a': admin_secret refused by {janus.admin_url} — check "
        "[janus.county-a] admin_secret (janus.jcfg general.admin_secret)"
    )

    closed = janus.url.replace(f":{janus.port}/", f":{janus.port + 7}/")
    port = (await check("county-b", instance(janus, api_url=closed))).problem
    assert port.startswith(f"janus instance 'county-b': api_url {closed} unreachable (")
    assert port.endswith("check [janus.county-b] api_url")

    wrong_path = janus.url.replace("/janus", "/jan")
    path = (await check("county-c", instance(janus, api_url=wrong_path))).problem
    assert f"api_url {wrong_path} answered HTTP 404, not as the Janus API" in path
    assert "[janus.county-c] api_url" in path

    # The admin address given as an API's (another Janus's, as a copy and paste might):
    # Janus's API refuses admin requests.
    other = await start_janus()
    admin = (await check("county-d", instance(other, admin_url=janus.url))).problem
    assert "answered \"Unhandled request 'message_plugin' at this path\"" in admin
    assert "is it the API? check [janus.county-d] admin_url" in admin

    closed_admin = janus.admin_url.replace(f":{janus.admin_port}/", f":{janus.port + 9}/")
    admin_down = (await check("county-e", instance(janus, admin_url=closed_admin))).problem
    assert f"admin_url {closed_admin} unreachable" in admin_down
    assert "[janus.county-e] admin_url" in admin_down

    # TEST-NET-1: nothing answers there; the timeout or the missing route ends the wait.
    far = {"api_url": "http://192.0.2.1:8088/janus", "admin_url": "http://192.0.2.1:7088/admin"}
    nowhere = (await check("county-f", instance(janus, **far))).problem
    assert "api_url http://192.0.2.1:8088/janus" in nowhere
    assert "[janus.county-f] api_url" in nowhere
    for problem in (secret.problem, port, path, admin, admin_down, nowhere):
        assert janus.admin_secret not in problem and "not-the-secret" not in problem
