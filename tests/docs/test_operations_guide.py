"""Every command of the operations guide (docs/operations.md), run in order against a real
controller, so the guide cannot drift from the product.

The guide speaks of the county's machines (``10.20.0.5``, ``/var/lib/classbridge``…); the
test swaps those for a controller it starts on loopback and directories of its own. A
line ``! command`` must fail (the guide shows a refusal). Blocks fenced ``bash norun``
need root, systemd or a real room and are not run; the test checks they stay few and
that each is one the guide says why about.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest
from release_fixtures import build_wheel

ROOT = pathlib.Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations.md"
BIN = pathlib.Path(sys.executable).parent
FENCE = re.compile(r"^```bash( norun| service| build)?\n(.*?)^```", re.M | re.S)
# The release the guide builds (``bash build``): the test makes that wheel of this
# checkout with the builder the update tests use, offline, where the guide runs pip.
RELEASE = "0.7.0"
# What the test runs for a ``bash service`` block (systemd starting the agent): the same
# program, in the background, then it waits until the agent's own check-up passes.
AGENT_SERVICE = (
    "(classroom-agent run --media-address 127.0.0.1 >>agent.log 2>&1 &)\n"
    "for _ in $(seq 120); do classroom-agent doctor >/dev/null 2>&1 && break; sleep 0.5; done"
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _blocks() -> list[tuple[str, list[str]]]:
    """(kind: run | norun | service, commands) of every bash block, in order."""
    out = []
    for m in FENCE.finditer(GUIDE.read_text(encoding="utf-8")):
        lines = [ln for ln in m.group(2).splitlines() if ln.strip() and not ln.startswith("#")]
        out.append(((m.group(1) or " run").strip(), lines))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _localise(line: str, tmp: pathlib.Path, port: int) -> str:
    """The county's addresses and directories → this test's (one pass, so a swapped-in
    path is not swapped again), and the project's own files from the top of its tree."""
    swaps = {
        "tcp://10.20.0.5:7001": f"tcp://127.0.0.1:{port}",
        "/var/lib/classbridge/": f"{tmp}/var/lib/classbridge/",
        "/etc/classbridge": f"{tmp}/etc/classbridge",
        "/srv/": f"{tmp}/srv/",
        "/tmp/": f"{tmp}/tmp/",
        "hardware_profiles/": f"{ROOT}/hardware_profiles/",
        "scripts/": f"{ROOT}/scripts/",
    }
    pattern = "|".join(re.escape(k) for k in swaps)
    return re.sub(rf"(?<![\w.-])({pattern})", lambda m: swaps[m.group(1)], line)


def _script(tmp: pathlib.Path, port: int) -> str:
    lines = ["set -euo pipefail", f"cd {shlex.quote(str(tmp / 'work'))}"]
    for kind, commands in _blocks():
        if kind == "norun":
            continue
        if kind == "service":
            lines += [f"echo {shlex.quote('$ ' + c)}" for c in commands]
            lines.append(AGENT_SERVICE)
            continue
        if kind == "build":  # made before the script runs (see RELEASE)
            lines += [f"echo {shlex.quote('$ ' + c)}" for c in commands]
            continue
        for command in commands:
            local = _localise(command, tmp, port)
            lines.append(f"echo {shlex.quote('$ ' + command)}")
            if local.startswith("! "):
                lines.append(
                    f"if {local[2:]}; then echo 'expected a refusal, it succeeded' >&2; exit 1; fi"
                )
            else:
                lines.append(local)
    return "\n".join(lines) + "\n"


def test_the_guide_runs_bilingual_and_covers_what_a_technician_does() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "安装并注册",
        "Installing and enrolling",
        "硬件配置",
        "hardware profile",
        "每天第一节课前",
        "daily check",
        "告警的含义",
        "What each alert means",
        "升级、备份与恢复",
        "Updating, backing up and restoring",
    ):
        assert heading in text, heading
    # Every alert kind the controller raises is explained.
    from controller.agents.alerts import OFFLINE, SEVERITY_OF_KIND

    for kind in {OFFLINE, *SEVERITY_OF_KIND}:
        assert f"`{kind}`" in text, f"alert {kind} is not in the guide"
    blocks = _blocks()
    run = sum(len(c) for kind, c in blocks if kind == "run")
    shown = [c for kind, cs in blocks if kind != "run" for c in cs]
    assert run >= 15, run
    # What is not run needs root, systemd or the room's own devices, nothing else.
    allowed = (
        "sudo ",
        "classroom-agent test ",
        "classroom-agent net ",
        "classroom-controller notify test",
        "python3 -m pip wheel",
        "scripts/release-key sign",
        "classroom-controller release",
    )
    assert all(c.startswith(allowed) for c in shown), shown


def test_every_command_of_the_guide_runs(tmp_path: pathlib.Path) -> None:
    port, http_port = _free_port(), _free_port()
    for d in ("work", "tmp", "srv", "var/lib/classbridge", "etc"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    assert f"classbridge-{RELEASE}-py3-none-any.whl" in GUIDE.read_text(encoding="utf-8")
    build_wheel(tmp_path / "work" / "dist", RELEASE)
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "CLASSBRIDGE_CONTROLLER_STATE": str(tmp_path / "var/lib/classbridge/controller"),
        "CLASSBRIDGE_AGENT_STATE": str(tmp_path / "var/lib/classbridge/agent"),
        "CLASSBRIDGE_PROFILE": str(tmp_path / "etc/classbridge/profile.toml"),
    }
    log = (tmp_path / "controller.log").open("wb")
    controller = subprocess.Popen(
        [
            str(BIN / "classroom-controller"),
            "serve",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            assert controller.poll() is None, (tmp_path / "controller.log").read_text()
            assert time.monotonic() < deadline, "the controller did not start"
            time.sleep(0.2)
        script = _script(tmp_path, port)
        shell = subprocess.Popen(
            ["bash", "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,  # with the agent it starts, ended together below
        )
        try:
            said, errors = shell.communicate(timeout=200)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGTERM)
        assert shell.returncode == 0, f"{said[-3000:]}\n--- stderr ---\n{errors[-3000:]}"
        assert "city-1-101" in said  # the classroom list shows the new room
        assert (tmp_path / "srv/backup/controller-nightly.tar.gz").exists()
        assert (tmp_path / "var/lib/classbridge/controller-restored").is_dir()
        assert f"{RELEASE}" in said and "paused" in said  # the rollout, held
    finally:
        os.killpg(controller.pid, signal.SIGTERM)
        controller.wait(20)
        log.close()
