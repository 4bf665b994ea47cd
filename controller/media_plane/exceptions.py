"""Errors of the media plane: its configuration, its Janus instances, and placement.

Hierarchy::

    MediaPlaneError            (a ControllerError)
    ├── ConfigError            the TOML file, naming the file and the setting
    ├── JanusError             one Janus instance, naming it and the setting to check
    │   ├── JanusUnreachable   no answer (refused, timed out, no route)
    │   ├── JanusRefused       it answered and said no (admin_secret, wrong endpoint)
    │   └── VideoRoomError     the VideoRoom plugin refused a request (error_code, reason)
    └── NoCapacity             no healthy instance fits a lesson, and no fallback allowed
"""

from __future__ import annotations

from controller.common.errors import ControllerError


class MediaPlaneError(ControllerError):
    """Base of every media plane error."""


class ConfigError(MediaPlaneError):
    """A media plane setting that is missing, malformed or contradicts another."""

    def __init__(self, where: str, setting: str, message: str) -> None:
        super().__init__(f"{where}: {setting}: {message}")
        self.setting = setting


class JanusError(MediaPlaneError):
    """Something went wrong with one Janus instance; ``instance`` names it."""

    def __init__(self, instance: str, message: str) -> None:
        super().__init__(f"janus instance {instance!r}: {message}")
        self.instance = instance


class JanusUnreachable(JanusError):
    """No answer from an instance's API or admin API within the timeout."""


class JanusRefused(JanusError):
    """An instance answered but refused: a wrong secret or not the endpoint we expected."""


class VideoRoomError(JanusError):
    """The VideoRoom plugin refused a request; ``code`` is its error_code."""

    def __init__(self, instance: str, request: str, code: int, reason: str) -> None:
        super().__init__(instance, f"VideoRoom {request} refused: {reason} (error {code})")
        self.code = code
        self.reason = reason


class NoCapacity(MediaPlaneError):
    """No healthy Janus instance has room for a lesson and the built-in fallback is off."""
