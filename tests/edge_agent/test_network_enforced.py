"""The agent enforces its network profile: wrong network → recorded here, not streamed."""

from __future__ import annotations

import pathlib
import socket
import time

import pytest
import zmq

from edge_agent import daemon as daemon_mod
from edge_agent.daemon import AgentDaemon
from edge_agent.identity import Identity
from edge_agent.media.source_runner import SourceRunner
from edge_agent.network.interfaces import PlacementRefused
from edge_agent.profile import load_profile
from protocols.messages import JoinLesson
from protocols.network_profile import NetworkProfile, Rung

ROOT = pathlib.Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _agent(tmp_path: pathlib.Path, network: NetworkProfile) -> AgentDaemon:
    server_pub, _ = zmq.curve_keypair()
    pub, sec = zmq.curve_keypair()
    identity = Identity(
        "c1", f"tcp://127.0.0.1:{_free_port()}", server_pub.decode(), pub.decode(), sec.decode()
    )
    loaded = load_profile(ROOT / "hardware_profiles" / "synthetic.toml")
    return AgentDaemon(tmp_path / "state", identity, loaded, network_profile=network)


RURAL = NetworkProfile(
    name="rural",
    vlan_id=120,
    subnet="10.20.120.0/24",
    classroom_cap_kbps=3000,
    ladder=(Rung(name="720p", width=1280, height=720, kbps=1200),),
)


async def test_wrong_network_refuses_to_stream_but_records(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_mod, "READY_LINK_WAIT_S", 0.2)
    agent = _agent(tmp_path, RURAL)
    await agent.start()
    try:
        now = time.time()
        join = JoinLesson(
            lesson_id="L1",
            role="lead",
            publish=["teacher", "mic"],
            subscribe=[],
            start_at=now - 1,
            end_at=now + 30,
        )
        with pytest.raises(PlacementRefused, match=r"expects VLAN 120, subnet 10\.20\.120\.0/24"):
            await agent.lessons.join(join)
        assert agent.session is not None and agent.session.recorder.recording
        assert "refusing to stream" in agent.alerts["network_placement"]
        # the encoder was kept inside the profile's top rung
        teacher = agent.sources["teacher"]
        assert isinstance(teacher, SourceRunner)
        assert teacher._encoder.bitrate <= 1_200_000  # type: ignore[attr-defined]
    finally:
        await agent.stop()


async def test_a_bad_profile_from_the_controller_is_an_alert_not_a_crash(
    tmp_path: pathlib.Path,
) -> None:
    agent = _agent(tmp_path, RURAL)
    problem = agent.network.update_from_controller({"name": "x", "vlan_id": 5000})
    assert problem is not None and "vlan_id" in problem and "keeping the local profile" in problem
    assert agent.network.profile == RURAL
    ok = agent.network.update_from_controller(
        RURAL.model_copy(update={"name": "county"}).model_dump(mode="json"), tmp_path
    )
    assert ok is None and agent.network.profile is not None
    assert agent.network.profile.name == "county"
    assert (tmp_path / "network-profile.json").exists()  # for 'net check' and restarts
