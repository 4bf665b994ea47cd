"""The envelope around every control-plane message, and its wire codec (UTF-8 JSON)."""

from __future__ import annotations

import builtins
import json
import time
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols.errors import MalformedMessage, UnknownMessageType, UnsupportedVersion
from protocols.messages import BODY_TYPES, Body
from protocols.version import PROTOCOL_VERSION, SUPPORTED_VERSIONS

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

B = TypeVar("B", bound=Body)


class Envelope(BaseModel):
    """Protocol version, type, id, correlation id, sender and timestamp around a body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int
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
    return Envelope(
        v=PROTOCOL_VERSION,
        type=body.TYPE,
        id=uuid.uuid4().hex,
        correlation_id=correlation_id,
        sender=sender,
        ts=time.time(),
        body=body,
    )


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope to its wire bytes."""
    doc = {
        "v": envelope.v,
        "type": envelope.type,
        "id": envelope.id,
        "correlation_id": envelope.correlation_id,
        "sender": envelope.sender,
        "ts": envelope.ts,
        "body": envelope.body.model_dump(mode="json"),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes) -> Envelope:
    """Parse wire bytes into an envelope with a typed body, or raise a ``ProtocolError``."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        doc: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
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
