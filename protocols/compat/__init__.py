"""Talking to a peer one minor protocol version older: explicit adapters per version.

An envelope carries its sender's minor version as ``m`` (release 0.5, minor 5, sent
none). A receiver keeps fields it does not know (``Body`` allows extras) and ignores
unknown envelope fields, so an older build reads a newer peer's messages from minor 6 on.
Release 0.5 was stricter: it refused any field it did not know, and any message type. So
what a newer build sends to a minor-5 peer goes through ``down``:

- minor 6 → 5 (``_to_minor5``): every field, at any depth, that 0.5's models did not have
  is dropped, after the shapes stored in ``minor5.json`` (0.5's own JSON schemas, made by
  ``tests/protocols/make_compat.py``); ``m`` is dropped; a message type 0.5 did not know
  (a floor change, an upload token) is not sent at all (``None``), and the caller logs it.

What an older peer sends needs no change here: every field added since is optional, which
the golden messages of 0.5 pin (``tests/protocols/test_compat.py``). A field that changes
shape gets an ``up`` step beside ``_to_minor5``'s, for that version.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from functools import cache
from typing import Any

from protocols.version import OLDEST_MINOR, PROTOCOL_MINOR

Doc = dict[str, Any]


@cache
def _minor5() -> Doc:
    doc: Doc = json.loads((pathlib.Path(__file__).parent / "minor5.json").read_text())
    return doc


def _strip(value: Any, schema: Doc, defs: Doc) -> Any:
    """``value`` with every object key the schema does not allow removed, at any depth."""
    if "$ref" in schema:
        return _strip(value, defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for option in schema.get("anyOf", ()):
        kind = option.get("type")
        if isinstance(value, dict) and (kind == "object" or "$ref" in option):
            return _strip(value, option, defs)
        if isinstance(value, list) and kind == "array":
            return _strip(value, option, defs)
    if isinstance(value, list) and "items" in schema:
        return [_strip(item, schema["items"], defs) for item in value]
    if isinstance(value, dict):
        props: Doc = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        out = {}
        for key, item in value.items():
            if key in props:
                out[key] = _strip(item, props[key], defs)
            elif isinstance(extra, dict):
                out[key] = _strip(item, extra, defs)
            elif extra is not False:
                out[key] = item
        return out
    return value


def _to_minor5(doc: Doc) -> Doc | None:
    shapes = _minor5()
    body_schema = shapes["bodies"].get(doc.get("type"))
    if body_schema is None:
        return None  # a message type release 0.5 does not know
    env_schema = shapes["envelope"]
    out = {k: v for k, v in doc.items() if k in env_schema["properties"]}
    out["body"] = _strip(doc.get("body", {}), body_schema, body_schema.get("$defs", {}))
    return out


# The step from minor (key + 1) down to minor (key).
DOWN: dict[int, Callable[[Doc], Doc | None]] = {5: _to_minor5}


def down(doc: Doc, peer_minor: int) -> Doc | None:
    """The wire document ``doc`` (of this build's minor) as a ``peer_minor`` peer reads it;
    None if that peer has no such message. A peer older than the oldest supported minor
    gets the oldest shape (it would refuse this build's in any case)."""
    target = max(peer_minor, OLDEST_MINOR)
    out: Doc | None = doc
    for minor in range(PROTOCOL_MINOR - 1, target - 1, -1):
        if out is None:
            break
        out = DOWN[minor](out)
    return out
