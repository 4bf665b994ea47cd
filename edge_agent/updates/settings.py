"""Where this agent's releases live and which key signs them (``classroom-agent run
--releases-dir --release-key``)."""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.updates.updater import POLL_S
from protocols.releases import ReleaseSignatureError, load_public_key

log = logging.getLogger(__name__)

DEFAULT_RELEASES = pathlib.Path("/opt/classbridge/releases")
DEFAULT_RELEASE_KEY = pathlib.Path("/etc/classbridge/release.pub")
LESSON_GUARD_S = 15 * 60.0  # no update within this long before a lesson


@dataclass(frozen=True)
class UpdateSettings:
    """Staged update settings of one agent."""

    releases: pathlib.Path = DEFAULT_RELEASES
    release_key: pathlib.Path = DEFAULT_RELEASE_KEY
    poll_s: float = POLL_S

    def public_key(self) -> Ed25519PublicKey | None:
        """The release public key, or None (logged: offers are then refused)."""
        try:
            return load_public_key(self.release_key.read_bytes(), str(self.release_key))
        except OSError as err:
            log.warning("no release public key (%s): agent updates are refused", err)
        except ReleaseSignatureError as err:
            log.error("%s: agent updates are refused", err)
        return None
