"""The agent's enrolled identity: its CURVE key pair and the controller it trusts."""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import asdict, dataclass

from edge_agent.errors import NotEnrolled

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class Identity:
    """Everything the agent needs to dial its controller."""

    classroom_id: str
    controller: str  # tcp://host:port of the control socket
    controller_public_key: str
    public_key: str
    secret_key: str

    def save(self, state_dir: pathlib.Path) -> pathlib.Path:
        """Write atomically with mode 0600 (it holds the secret key)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / IDENTITY_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(path)
        return path

    @classmethod
    def load(cls, state_dir: pathlib.Path) -> Identity:
        """Read the identity, or raise ``NotEnrolled`` saying what to run."""
        path = state_dir / IDENTITY_FILE
        if not path.exists():
            raise NotEnrolled(
                f"no identity in {path}; run 'classroom-agent enroll "
                "--controller tcp://HOST:PORT --token TOKEN' first"
            )
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:
            raise NotEnrolled(f"{path} is damaged ({err}); enrol again") from err


def enrol_endpoint(controller: str) -> str:
    """The enrolment socket sits on the port after the control socket."""
    host, _, port = controller.rpartition(":")
    if not host.startswith("tcp://") or not port.isdigit():
        raise ValueError(f"controller address {controller!r} must look like tcp://HOST:PORT")
    return f"{host}:{int(port) + 1}"
