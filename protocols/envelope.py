"""The envelope around every control-plane message, and its wire codec (UTF-8 JSON)."""

from __future__ import annotations

import builtins
import itertools
import json
import os
import time
import uuid
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols.compat import down
from protocols.errors import (
    MalformedMessage,
    NotForPeer,
    UnknownMessageType,
    UnsupportedVersion,
)
from protocols.messages import BODY_TYPES, Body
from protocols.version import OLDEST_MINOR, PROTOCOL_MINOR, PROTOCOL_VERSION, SUPPORTED_VERSIONS

# The largest control-plane message either side accepts. Every socket sets it as
# ZMQ_MAXMSGSIZE, so a bigger one makes ZeroMQ hang up on the sender before it is held in
# memory; an enrolment request is far smaller still.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_ENROL_MESSAGE_BYTES = 64 * 1024

B = TypeVar("B", bound=Body)

# Message ids: a random prefix per process and a counter. Unique across restarts, and a
# tenth of a random UUID's cost, at a province's 4,000 messages a second. Nothing relies
# on them being unguessable: a reply settles a request only when it comes from the
# classroom that was asked.
_ID_PREFIX = uuid.uuid4().hex[:20]
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    """A forked child numbers its messages under a prefix of its own."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:20], itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)


class Envelope(BaseModel):
    """Protocol version, type, id, correlation id, sender and timestamp around a body."""

    # Unknown envelope fields are ignored: a newer peer may add some.
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int
    m: int = OLDEST_MINOR  # the sender's minor version (release 0.5 sent none)
    type: str
    id: str = Field(min_length=1, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=64)
    sender: str = Field(min_length=1, max_length=128)
    ts: float
    body: Body

    def expect(self, cls: builtins.type[B]) -> B:
        """Return the body as ``cls``, or raise if it is another type."""
        body = self.body
        if not isinstance(body, cls):
            raise UnknownMessageType(f"expected {cls.TYPE!r}, got {self.type!r}")
        return body


def make(body: Body, sender: str, correlation_id: str | None = None) -> Envelope:
    """Wrap ``body`` in a fresh envelope."""
    # Built from our own typed values, so not validated again (a tenth of the cost).
    return Envelope.model_construct(
        v=PROTOCOL_VERSION,
        m=PROTOCOL_MINOR,
        type=body.TYPE,
        id=f"{_ID_PREFIX}{next(_ID_COUNTER):x}",
        correlation_id=correlation_id,
        sender=sender,
        ts=time.time(),
        body=body,
    )


def encode(envelope: Envelope, peer_minor: int = PROTOCOL_MINOR) -> bytes:
    """Serialise an envelope to its wire bytes, as a ``peer_minor`` peer reads them;
    ``NotForPeer`` if that peer has no such message."""
    doc: dict[str, Any] = {
        "v": envelope.v,
        "m": envelope.m,
        "type": envelope.type,
        "id": envelope.id,
        "correlation_id": envelope.correlation_id,
        "sender": envelope.sender,
        "ts": envelope.ts,
        "body": envelope.body.model_dump(mode="json"),
    }
    if peer_minor < PROTOCOL_MINOR:
        adapted = down(doc, peer_minor)
        if adapted is None:
            raise NotForPeer(
                f"{envelope.type!r} does not exist in protocol minor {peer_minor} "
                "(the peer runs an older release); not sent"
            )
        doc = adapted
    return dumps(doc)


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON; what orjson cannot write (an integer past 64 bits, say) goes
    through the standard library, in the same shape."""
    try:
        return orjson.dumps(doc)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """Parse JSON; the standard library reads what orjson refuses but older peers may send
    (NaN, Infinity). Raises ``ValueError`` (``UnicodeDecodeError`` included)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def peek_minor(data: bytes) -> int:
    """The sender's minor from raw bytes that may not decode (for answering in a shape it
    reads); the oldest minor when it says none or cannot be read."""
    try:
        doc = json.loads(data) if len(data) <= MAX_MESSAGE_BYTES else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return OLDEST_MINOR
    minor = doc.get("m") if isinstance(doc, dict) else None
    return minor if isinstance(minor, int) and not isinstance(minor, bool) else OLDEST_MINOR


def decode(data: bytes) -> Envelope:
    """Parse wire bytes into an envelope with a typed body, or raise a ``ProtocolError``."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        doc: Any = loads(data)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedMessage(f"not UTF-8 JSON: {err}") from err
    if not isinstance(doc, dict):
        raise MalformedMessage(f"envelope must be a JSON object, got {type(doc).__name__}")
    version = doc.get("v")
    if not isinstance(version, int):
        raise MalformedMessage("envelope field 'v' (protocol version) is missing or not an int")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"protocol version {version} is not supported (this build reads "
            f"{sorted(SUPPORTED_VERSIONS)}); upgrade the older side"
        )
    type_name = doc.get("type")
    if not isinstance(type_name, str):
        raise MalformedMessage("envelope field 'type' is missing or not a string")
    body_cls = BODY_TYPES.get(type_name)
    if body_cls is None:
        raise UnknownMessageType(f"unknown message type {type_name!r}")
    raw_body = doc.get("body")
    try:
        body = body_cls.model_validate(raw_body)
        return Envelope.model_validate({**doc, "body": body})
    except ValidationError as err:
        raise MalformedMessage(f"invalid {type_name!r} message: {_describe(err)}") from err


def _describe(err: ValidationError) -> str:
    """Summarise a pydantic error as 'field: problem' pairs."""
    parts = []
    for item in err.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)
