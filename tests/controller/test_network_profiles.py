"""Network profiles on the controller: stored, listed, assigned (a classroom's own wins
over its school's), bad ones refused with clear messages at the CLI and the HTTP API, and
sent to agents in ``RegisterAck``."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import REPO, bearer_headers, loopback_server_tls, loopback_session
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from controller.agents.keys import KeyBook, ServerKeys
from controller.agents.messages import AgentMessages
from controller.agents.presence import Presence
from controller.agents.registry import add_classroom
from controller.app.cli import app
from controller.app.http_api import HttpApi
from controller.common.errors import InvalidRequest, NotFound
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.network.profiles import (
    assign_profile,
    effective_profile,
    list_profiles,
    parse_profile_text,
    put_profile,
)
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage
from protocols import envelope
from protocols.messages import Register, RegisterAck
from protocols.network_profile import parse_network_profile

GOOD = """
name = "county-std"
vlan_id = 120
subnet = "10.20.30.0/24"
uplink_kbps = 20000
classroom_cap_kbps = 8200
audio_kbps = 64
dscp_video = "af41"

[[ladder]]
name = "1080p"
width = 1920
height = 1080
kbps = 4000

[[ladder]]
name = "720p"
width = 1280
height = 720
kbps = 2000
"""
# (what is wrong, the TOML line that breaks it, words the message must carry)
BAD = [
    (
        "ladder top over cap",
        ("classroom_cap_kbps = 8200", "classroom_cap_kbps = 3000"),
        ["'1080p'", "4000 kbps video", "exceeds the classroom cap of 3000 kbps"],
    ),
    ("VLAN 0", ("vlan_id = 120", "vlan_id = 0"), ["vlan_id", "VLAN id 0 is outside 1–4094"]),
    (
        "VLAN 4095",
        ("vlan_id = 120", "vlan_id = 4095"),
        ["vlan_id", "VLAN id 4095 is outside 1–4094", "reserved"],
    ),
    (
        "bad subnet",
        ('subnet = "10.20.30.0/24"', 'subnet = "10.20.300.0/24"'),
        ["subnet", "'10.20.300.0/24' is not a subnet", "CIDR"],
    ),
]


def _bad(change: tuple[str, str]) -> str:
    assert change[0] in GOOD
    return GOOD.replace(*change)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in (("city-101", "city"), ("city-102", "city"), ("lone-1", "")):
            add_classroom(s, cid, cid, school, keys.public)
    return factory


def test_put_list_assign_and_the_classroom_profile_wins(db: sessionmaker[Session]) -> None:
    other = parse_profile_text(GOOD.replace("county-std", "room-special"), "special.toml")
    with db() as s:
        assert put_profile(s, parse_profile_text(GOOD, "good.toml"), "good.toml") is True
        assert put_profile(s, parse_profile_text(GOOD, "good.toml"), "good.toml") is False
        put_profile(s, other, "special.toml")
        assert effective_profile(s, "city-101") is None
        # "city" has no row in the set-up yet: its classrooms name it, so it gets one
        assert "assigned to school 'city'" in assign_profile(s, "county-std", school="city")
        assign_profile(s, "room-special", classroom="city-102")
        assert effective_profile(s, "city-101").name == "county-std"  # type: ignore[union-attr]
        assert effective_profile(s, "city-102").name == "room-special"  # type: ignore[union-attr]
        assert effective_profile(s, "lone-1") is None
        listed = {p.profile.name: p for p in list_profiles(s)}
        assert listed["county-std"].schools == ["city"] and listed["county-std"].classrooms == []
        assert listed["room-special"].classrooms == ["city-102"]
        assign_profile(s, None, classroom="city-102")  # falls back to the school's
        assert effective_profile(s, "city-102").name == "county-std"  # type: ignore[union-attr]

        with pytest.raises(NotFound, match=r"'nope' does not exist \(known: county-std"):
            assign_profile(s, "nope", school="city")
        with pytest.raises(NotFound, match="school 'atlantis' is neither"):
            assign_profile(s, "county-std", school="atlantis")
        with pytest.raises(NotFound, match="classroom 'x-9' does not exist"):
            assign_profile(s, "county-std", classroom="x-9")
        with pytest.raises(InvalidRequest, match="exactly one"):
            assign_profile(s, "county-std", school="city", classroom="city-101")


@pytest.mark.parametrize(("what", "change", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_profiles_are_refused_with_what_to_fix(
    db: sessionmaker[Session], what: str, change: tuple[str, str], words: list[str]
) -> None:
    doc = json.loads(json.dumps(_toml(_bad(change))))
    with db() as s, pytest.raises(InvalidRequest) as info:
        put_profile(s, doc, "bad.json")
    message = str(info.value)
    assert message.startswith("network profile bad.json:"), message
    for word in words:
        assert word in message, (what, message)
    with db() as s:
        assert list_profiles(s) == []


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def test_cli_add_list_show_assign_and_bad_files(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    env = {"CLASSBRIDGE_CONTROLLER_STATE": str(state)}
    runner = CliRunner()
    keys_dir = state
    state.mkdir()
    migrate(database_url(state))
    with sessions(make_engine(database_url(state)))() as s:
        add_classroom(s, "city-101", "city-101", "city", ServerKeys.load_or_create(keys_dir).public)
    good = tmp_path / "county.toml"
    good.write_text(GOOD, encoding="utf-8")

    out = runner.invoke(app, ["network-profile", "add", str(good)], env=env)
    assert out.exit_code == 0, out.output
    assert "'county-std' added: 1080p 4000 > 720p 2000 kbps" in out.output
    out = runner.invoke(app, ["network-profile", "add", str(good)], env=env)
    assert "replaced" in out.output

    for what, change, words in BAD:
        bad = tmp_path / f"{what.replace(' ', '-')}.toml"
        bad.write_text(_bad(change), encoding="utf-8")
        out = runner.invoke(app, ["network-profile", "add", str(bad)], env=env)
        assert out.exit_code == 2, (what, out.output)
        assert out.stderr.startswith(f"error: network profile {bad}:"), out.stderr
        assert all(w in out.stderr for w in words), (what, out.stderr)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [", encoding="utf-8")
    out = runner.invoke(app, ["network-profile", "add", str(broken)], env=env)
    assert out.exit_code == 2 and "not valid TOML" in out.stderr

    out = runner.invoke(
        app, ["network-profile", "assign", "county-std", "--school", "city"], env=env
    )
    assert out.exit_code == 0 and "assigned to school 'city'" in out.output, out.output
    out = runner.invoke(app, ["network-profile", "assign", "county-std"], env=env)
    assert out.exit_code == 2 and "exactly one of --school or --classroom" in out.stderr
    out = runner.invoke(app, ["network-profile", "assign", "nope", "--school", "city"], env=env)
    assert out.exit_code == 2 and "'nope' does not exist" in out.stderr

    out = runner.invoke(app, ["network-profile", "list", "--json"], env=env)
    [row] = json.loads(out.output)
    assert row["name"] == "county-std" and row["schools"] == ["city"]
    assert row["profile"]["vlan_id"] == 120 and row["profile"]["dscp_video"] == "AF41"
    out = runner.invoke(app, ["network-profile", "list"], env=env)
    assert "county-std" in out.output and "school city" in out.output
    out = runner.invoke(app, ["network-profile", "show", "county-std"], env=env)
    assert "VLAN 120, subnet 10.20.30.0/24" in out.output and "rung 720p" in out.output
    out = runner.invoke(app, ["network-profile", "show", "county-std", "--json"], env=env)
    assert json.loads(out.output)["ladder"][1]["kbps"] == 2000
    out = runner.invoke(app, ["network-profile", "show", "nope"], env=env)
    assert out.exit_code == 2


EXAMPLES = sorted((REPO / "hardware_profiles" / "network").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_example_profiles_are_accepted(path: pathlib.Path) -> None:
    profile = parse_profile_text(path.read_text(encoding="utf-8"), str(path))
    assert profile.ladder


@pytest.fixture
async def api_auth(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    keys = ServerKeys.load_or_create(tmp_path)
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: [])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    try:
        yield f"https://127.0.0.1:{http.port}/api/v1", bearer_headers(db)
    finally:
        await http.stop()


async def test_http_put_list_assign_and_bad_profiles(
    api_auth: tuple[str, dict[str, str]],
) -> None:
    api, headers = api_auth
    base = f"{api}/network-profiles"
    async with loopback_session(headers=headers) as http:
        doc = _toml(GOOD)
        async with http.put(f"{base}/county-std", json=doc) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["subnet"] == "10.20.30.0/24"
        async with http.put(
            f"{base}/county-std", data=GOOD, headers={"Content-Type": "application/toml"}
        ) as r:
            assert r.status == 200, await r.text()
        for what, change, words in BAD:
            async with http.put(
                f"{base}/county-std",
                data=_bad(change),
                headers={"Content-Type": "application/toml"},
            ) as r:
                assert r.status == 400, what
                message = (await r.json())["error"]
                assert all(w in message for w in words), (what, message)
            async with http.put(f"{base}/county-std", json=_toml(_bad(change))) as r:
                assert r.status == 400 and words[-1] in (await r.json())["error"]
        async with http.put(f"{base}/other", json=doc) as r:
            assert r.status == 400 and "the URL says 'other'" in (await r.json())["error"]
        async with http.put(f"{base}/x", data=b"{", headers={"Content-Type": "a/json"}) as r:
            assert r.status == 400 and "not JSON" in (await r.json())["error"]

        async with http.post(f"{base}/county-std/assign", json={"classroom": "city-101"}) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base}/county-std/assign", json={"school": "atlantis"}) as r:
            assert r.status == 404
        async with http.post(f"{base}/county-std/assign", json={}) as r:
            assert r.status == 400 and "exactly one" in (await r.json())["error"]
        async with http.get(base) as r:
            [row] = await r.json()
            assert row["classrooms"] == ["city-101"]
            # the bad puts changed nothing
            assert row["profile"]["vlan_id"] == 120
        async with http.get(f"{base}/county-std") as r:
            assert (await r.json())["ladder"][0]["name"] == "1080p"
        async with http.get(f"{base}/nope") as r:
            assert r.status == 404 and "known: county-std" in (await r.json())["error"]
        async with http.get(f"{api}/openapi.json") as r:
            paths = (await r.json())["paths"]
            assert "/api/v1/network-profiles/{name}" in paths and "/api/v1/bandwidth" in paths


class _Orchestrator:
    elsewhere = None  # one controller: no others to route through

    def agent_registered(self, classroom_id: str) -> None:
        pass


async def test_register_ack_carries_the_effective_profile(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    with db() as s:
        put_profile(s, parse_profile_text(GOOD, "good.toml"), "good.toml")
        assign_profile(s, "county-std", school="city")
    messages = AgentMessages(
        db,
        ServerKeys.load_or_create(tmp_path),
        KeyBook(),
        Presence(2.0),
        _Orchestrator(),  # type: ignore[arg-type]
        "https://127.0.0.1:7780",
    )

    async def register(classroom: str) -> RegisterAck:
        body = Register(
            classroom_id=classroom,
            agent_version="test",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[],
        )
        reply = await messages.handle(classroom, envelope.make(body, classroom))
        assert isinstance(reply, RegisterAck)
        # what the agent decodes off the wire
        decoded = envelope.decode(envelope.encode(envelope.make(reply, "controller"))).body
        assert isinstance(decoded, RegisterAck)
        return decoded

    ack = await register("city-101")
    assert ack.network_profile is not None
    profile = parse_network_profile(ack.network_profile, "ack")
    assert profile.name == "county-std" and profile.vlan_id == 120
    assert [r.name for r in profile.ladder] == ["1080p", "720p"]

    plain = await register("lone-1")
    assert plain.network_profile is None
    # an unprofiled ack leaves the field off the wire, so older agents still read it
    wire = envelope.encode(envelope.make(plain, "controller"))
    assert b"network_profile" not in wire
