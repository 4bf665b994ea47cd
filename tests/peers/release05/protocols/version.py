"""The control-plane protocol version stamped in every envelope."""

PROTOCOL_VERSION = 1
# Versions this build can read. A peer on an older version gets an explicit adapter here.
SUPPORTED_VERSIONS = frozenset({1})
