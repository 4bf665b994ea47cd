"""Errors raised while decoding control-plane messages.

Hierarchy::

    ProtocolError (ValueError)
    ├── MalformedMessage     bytes that are not a valid envelope or body
    ├── UnknownMessageType   a well-formed envelope whose type this build does not know
    ├── UnsupportedVersion   an envelope from a protocol version this build cannot read
    └── NotForPeer           a message type an older peer does not have (not sent)
"""


class ProtocolError(ValueError):
    """A control-plane message could not be decoded."""


class MalformedMessage(ProtocolError):
    """The bytes are not a valid envelope, or the body does not match its type."""


class UnknownMessageType(ProtocolError):
    """The envelope names a message type this build does not know."""


class UnsupportedVersion(ProtocolError):
    """The envelope carries a protocol version this build cannot read."""


class NotForPeer(ProtocolError):
    """A message the peer's older protocol minor has no type for: it is not sent."""
