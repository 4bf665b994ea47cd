"""A room's secret and PIN, derived from its instance's admin secret and the room id.

Nothing secret is stored for a room: a restarted controller (or a new leader) that holds
the instance's admin secret derives the same secret to destroy the room and the same PIN
for its agents' joins, and can destroy a room its predecessor made but never recorded
(killed between the create and the write). Whoever holds the admin secret can already
manage every room of the instance, so deriving from it exposes nothing more; without it
the room id (random, 53 bits) tells nothing. Changing an instance's admin secret orphans
the rooms made before: the sweep names them, and Janus drops them when it restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from controller.media_plane.config import JanusInstance

# Every room this controller makes is described so (the sweep finds them by it).
DESCRIPTION_PREFIX = "classbridge lesson "


def _derive(instance: JanusInstance, room: int, purpose: str, size: int) -> str:
    message = f"classbridge videoroom {purpose} v1:{instance.name}:{room}".encode()
    digest = hmac.new(instance.admin_secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:size]).decode().rstrip("=")


def room_secret(instance: JanusInstance, room: int) -> str:
    """The secret that manages (destroys) ``room`` on ``instance``."""
    return _derive(instance, room, "secret", 24)


def room_pin(instance: JanusInstance, room: int) -> str:
    """The PIN that admits participants to ``room`` on ``instance``."""
    return _derive(instance, room, "pin", 12)
