"""systemd's part for an agent under test: before every start run the boot guard (the
unit's ExecStartPre=), start ``releases/current/bin/classroom-agent`` (ExecStart= through
the symlink), and start it again when it exits non-zero (Restart=on-failure).

    python agent_supervisor.py RELEASES STATE_DIR -- run --state-dir ... (agent arguments)

SIGTERM stops the agent and then the supervisor, as ``systemctl stop`` does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

RESTART_SEC = 0.5
MAX_RESTARTS = 20  # systemd's start limit: a crash loop ends


def main(argv: list[str]) -> int:
    """Supervise until SIGTERM or a clean exit."""
    split = argv.index("--")
    releases, state_dir = Path(argv[0]), Path(argv[1])
    agent_args = argv[split + 1 :]
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for start in range(MAX_RESTARTS):
        guard = subprocess.run(
            [sys.executable, "-I", str(releases / "boot_guard.py"), str(releases), str(state_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"supervisor: {guard.stdout.strip()} {guard.stderr.strip()}", flush=True)
        target = (releases / "current").resolve()
        print(f"supervisor: start {start + 1}: {target}", flush=True)
        child = subprocess.Popen(
            [str(releases / "current" / "bin" / "classroom-agent"), *agent_args]
        )
        code = child.wait()
        print(f"supervisor: agent exited {code}", flush=True)
        if stopping or code == 0:
            return 0
        time.sleep(RESTART_SEC)
    print("supervisor: start limit reached", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
