"""Technicians' remote actions from the console API to a real agent over the control
channel: doctor, logs, a PTZ preset on a VISCA head, restart; and who may run them."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from helpers import bearer_headers, controller_base, controller_session
from helpers import issue_token as issue_token_for

from controller.app.daemon import ControllerDaemon
from edge_agent import daemon as daemon_mod
from edge_agent.daemon import AgentDaemon
from edge_agent.enrol import enrol
from edge_agent.profile import Ptz, load_profile
from tests.peers.visca_responder import ViscaResponder

pytestmark = pytest.mark.timeout(90)
ROOT = pathlib.Path(__file__).parents[2]
PRESETS = {"board": 2, "wide": 1}


async def test_doctor_logs_ptz_and_restart_from_the_console_api(
    controller: ControllerDaemon, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_mod, "READY_LINK_WAIT_S", 5.0)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "agent.log").write_text("line one\nline two\nthe last line\n")
    monkeypatch.setattr("edge_agent.remote_actions.LOG_DIR", logs)
    monkeypatch.setattr("shutil.which", lambda name: None)  # no journal here: the log dir
    cfg = controller.config
    token = issue_token_for(cfg.state_dir, "city-101")
    state = tmp_path / "agent"
    identity = await enrol(f"tcp://127.0.0.1:{cfg.control_port}", token, state)
    with ViscaResponder() as head:
        synthetic = load_profile(ROOT / "hardware_profiles" / "synthetic.toml")
        devices = [
            d.model_copy(update={"ptz": Ptz(host="127.0.0.1", port=head.port, presets=PRESETS)})
            if d.name == "teacher"
            else d
            for d in synthetic.profile.devices
        ]
        loaded = synthetic.model_copy(
            update={"profile": synthetic.profile.model_copy(update={"devices": devices})}
        )
        agent = AgentDaemon(state, identity, loaded)
        await agent.start()
        assert controller.http is not None and controller._sessions is not None
        base = f"{controller_base(controller)}/api/v1/classrooms"
        admin = bearer_headers(controller._sessions, "technician")
        inspector = bearer_headers(controller._sessions, "inspector")
        try:
            async with controller_session(controller, headers=admin) as http:

                async def act(body: dict[str, object], room: str = "city-101") -> tuple[int, dict]:  # type: ignore[type-arg]
                    async with http.post(f"{base}/{room}/actions", json=body) as r:
                        return r.status, await r.json()

                status, doc = await act({"action": "doctor"})
                assert status == 200 and doc["action"] == "doctor"
                assert "PASS" in doc["output"] and "profile" in doc["output"]
                status, doc = await act({"action": "logs", "lines": 2})
                assert status == 200 and doc["output"].splitlines() == [
                    "line two",
                    "the last line",
                ]
                camera = next(d.name for d in loaded.profile.devices if d.ptz is not None)
                status, doc = await act({"action": "ptz", "camera": camera, "preset": "board"})
                assert status == 200 and doc["ok"], doc
                assert head.recalled == [2]
                status, doc = await act({"action": "ptz", "camera": camera, "preset": "door"})
                assert (
                    status == 200
                    and not doc["ok"]
                    and "known presets: board, wide" in doc["output"]
                )
                status, doc = await act({"action": "reboot"})
                assert status == 400 and "action" in doc["error"]
                status, doc = await act({"action": "doctor"}, room="nowhere-9")
                assert status == 409 and "online" in doc["error"]
                status, doc = await act({"action": "restart"})
                assert status == 200 and doc["ok"]
                await asyncio.sleep(1.0)
                assert agent.restart_requested and agent._stopping.is_set()
            async with (
                controller_session(controller, headers=inspector) as http,
                http.post(f"{base}/city-101/actions", json={"action": "logs"}) as r,
            ):
                assert r.status == 403
        finally:
            await agent.stop()
