"""The control-plane protocol version stamped in every envelope.

``v`` is the major version: a peer on another major is refused. Within a major, ``m`` is
the minor: from minor 6 on, either side keeps fields it does not know and ignores unknown
envelope fields, and a newer side adapts what it sends to an older peer
(``protocols.compat``), so a fleet upgrades one classroom at a time.
"""

PROTOCOL_VERSION = 1
# Versions this build can read. A peer on an older version gets an explicit adapter here.
SUPPORTED_VERSIONS = frozenset({1})
PROTOCOL_MINOR = 6  # this build's minor, sent as the envelope's ``m``
OLDEST_MINOR = 5  # release 0.5, which sent no ``m``: the oldest peer this build talks to
