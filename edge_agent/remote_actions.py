"""Remote actions a technician runs on the classroom PC from the console.

``doctor`` runs every check (the same list as ``classroom-agent doctor``), ``logs`` returns
the agent's recent log, ``ptz`` recalls a camera's preset over VISCA and ``restart`` stops
the agent with an exit code that makes systemd start it again. Each runs off the event
loop's critical path: the daemon answers when the action is done.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess

from edge_agent import checks
from edge_agent.devices.visca import ViscaClient, ViscaError, preset_number
from edge_agent.profile import HardwareProfile
from protocols.messages import ActionResult, AgentAction

RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: systemd's Restart=on-failure starts the agent again
LOG_DIR = pathlib.Path(os.environ.get("LOGS_DIRECTORY", "/var/log/classbridge"))


async def doctor(profile_path: pathlib.Path, state_dir: pathlib.Path) -> ActionResult:
    """Every check, as the technician's CLI runs them."""
    found = await asyncio.to_thread(checks.doctor, profile_path, state_dir)
    lines = [
        f"{'PASS' if c.ok else 'FAIL'}  {c.name:<16} {c.detail}" + (f"  → {c.fix}" if c.fix else "")
        for c in found
    ]
    failed = sum(1 for c in found if not c.ok)
    return ActionResult(
        action="doctor",
        ok=failed == 0,
        output="\n".join(lines),
        data=checks.as_json(found),
    )


def _recent_logs(lines: int, log_dir: pathlib.Path) -> str:
    if shutil.which("journalctl"):
        done = subprocess.run(
            ["journalctl", "-u", "classroom-agent", "-n", str(lines), "--no-pager"],
            check=False,
            capture_output=True,
            text=True,
            timeout=20,
        )
        if done.returncode == 0 and done.stdout.strip() and "No entries" not in done.stdout:
            return done.stdout
    files = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
    if not files:
        return ""
    return "\n".join(files[-1].read_text(errors="replace").splitlines()[-lines:])


async def logs(lines: int, log_dir: pathlib.Path | None = None) -> ActionResult:
    """The agent's last ``lines`` log lines (journal, else its log directory)."""
    log_dir = log_dir or LOG_DIR
    text = await asyncio.to_thread(_recent_logs, lines, log_dir)
    if not text:
        return ActionResult(
            action="logs",
            ok=False,
            output=f"no journal entries for classroom-agent and no logs in {log_dir}",
        )
    return ActionResult(action="logs", ok=True, output=text)


async def ptz(profile: HardwareProfile, camera: str, preset: str) -> ActionResult:
    """Recall a named preset on a camera's PTZ head."""
    try:
        device = profile.device(camera)
    except KeyError:
        names = [d.name for d in profile.devices if d.ptz is not None]
        return ActionResult(
            action="ptz",
            ok=False,
            output=f"no camera {camera!r} in profile {profile.name!r}; cameras with PTZ: "
            f"{', '.join(names) or 'none'}",
        )
    if device.ptz is None:
        return ActionResult(
            action="ptz", ok=False, output=f"camera {camera!r} has no [devices.ptz] in its profile"
        )
    try:
        number = preset_number(device.ptz.presets, preset)
    except (KeyError, ValueError) as err:
        return ActionResult(action="ptz", ok=False, output=f"{camera}: {err.args[0]}")
    try:
        async with ViscaClient(device.ptz.host, device.ptz.port) as head:
            await head.recall_preset(number)
    except (ViscaError, OSError) as err:
        return ActionResult(action="ptz", ok=False, output=f"{camera}: {err}")
    return ActionResult(
        action="ptz",
        ok=True,
        output=f"{camera}: preset {preset!r} (#{number}) recalled on {device.ptz.host}",
        data={"preset": number},
    )


async def run(
    action: AgentAction,
    profile: HardwareProfile,
    profile_path: pathlib.Path,
    state_dir: pathlib.Path,
) -> ActionResult:
    """Run one action (not ``restart``: the daemon does that after answering)."""
    if action.action == "doctor":
        return await doctor(profile_path, state_dir)
    if action.action == "logs":
        return await logs(action.lines)
    if action.action == "ptz":
        return await ptz(profile, action.camera, action.preset)
    raise ValueError(f"action {action.action!r} is the daemon's own")
