"""The agent's enrolled identity: its CURVE key pair and the controller it trusts."""

from __future__ import annotations

import json
import pathlib
from dataclasses import asdict, dataclass, field

from edge_agent.errors import NotEnrolled
from protocols.private_files import private_dir, write_private

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class Identity:
    """Everything the agent needs to dial its controller."""

    classroom_id: str
    controller: str  # tcp://host:port of the control socket
    controller_public_key: str
    public_key: str
    secret_key: str
    # The controller's HTTPS trust anchor (PEM), received at enrolment over the CURVE
    # socket pinned by controller_public_key. Empty for agents enrolled before HTTPS.
    controller_ca_pem: str = ""
    # Several controllers: every controller's control socket, in the order to try them
    # (from enrolment). Empty: only ``controller``.
    controllers: list[str] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        """The control sockets to dial, in order; the link moves on when one goes away.

        The controller this agent enrolled with comes first: it is the one sure to know
        the agent's key (another admits it once its key book has caught up, seconds
        later), and a restarted agent goes back to it."""
        listed = list(self.controllers) or [self.controller]
        if self.controller in listed:
            at = listed.index(self.controller)
            listed = listed[at:] + listed[:at]
        return listed

    def save(self, state_dir: pathlib.Path) -> pathlib.Path:
        """Write atomically with mode 0600 (it holds the secret key)."""
        private_dir(state_dir)
        # A fresh temporary file (O_EXCL, 0600) renamed over the old one: a stale
        # world-readable ``.tmp`` left by an older version is never reused.
        return write_private(state_dir / IDENTITY_FILE, json.dumps(asdict(self), indent=2).encode())

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
