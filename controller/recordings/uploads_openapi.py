"""The OpenAPI description of the agents' upload routes (handled in
controller.recordings.uploads_api): they take a classroom's upload token with header
X-Classroom, not a console credential.

``OPENAPI_PATHS`` is merged into the controller's OpenAPI document."""

from __future__ import annotations

from typing import Any

from controller.common.api_common import json_content
from controller.recordings.uploads import MAX_FILE_BYTES, MAX_MANIFEST_BYTES
from protocols.uploads import CRC32

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_SECURITY: list[dict[str, list[str]]] = [{"uploadToken": []}]
_CLASSROOM = {
    "name": "X-Classroom",
    "in": "header",
    "required": True,
    "description": "the uploading classroom's id (with its upload token as bearer)",
    "schema": {"type": "string"},
}
_UPLOAD = {"name": "upload", "in": "path", "required": True, "schema": {"type": "string"}}


def _answers(ok: dict[str, Any]) -> dict[str, Any]:
    """The documented answers of an upload route besides its success ``ok``."""
    return {
        **ok,
        "400": {"description": "invalid request", **json_content(_ERROR)},
        "401": {"description": "missing or wrong upload token", **json_content(_ERROR)},
        "403": {
            "description": "the lesson is not this classroom's (it takes no part in it, or "
            "another classroom recorded it by hand)",
            **json_content(_ERROR),
        },
        "404": {"description": "unknown upload", **json_content(_ERROR)},
        "413": {
            "description": "body over the route's limit (1 MiB; a part: its exact length)",
            **json_content(_ERROR),
        },
        "422": {
            "description": "checksum mismatch, or stored but not playable",
            **json_content(_ERROR),
        },
        "503": {"description": "storage failed; retry later", **json_content(_ERROR)},
    }


_CRC32 = {
    "type": "string",
    "pattern": "^[A-Za-z0-9+/]{6}==$",
    "description": "the part's CRC32 as S3 writes it: base64 of its 4 big-endian bytes",
}
_PARTS = {
    "type": "object",
    "required": ["parts"],
    "properties": {
        "parts": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "crc32": {
            "type": "object",
            "description": "part number to CRC32, for uploads opened with checksum crc32; "
            "a target then carries the value to send as header x-amz-checksum-crc32",
            "additionalProperties": _CRC32,
        },
    },
}
_ETAGS = {
    "type": "object",
    "required": ["parts"],
    "properties": {
        "parts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["n", "etag"],
                "properties": {
                    "n": {"type": "integer"},
                    "etag": {"type": "string"},
                    "crc32": {**_CRC32, "description": "required by uploads opened with crc32"},
                },
            },
        }
    },
}
_OPEN = {
    "type": "object",
    "required": ["lesson_id", "rel", "size", "sha256"],
    "properties": {
        "lesson_id": {"type": "string"},
        "rel": {"type": "string", "description": "manifest.json or <track>/<segment>"},
        "size": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_FILE_BYTES,
            "description": f"bytes; a manifest.json at most {MAX_MANIFEST_BYTES}",
        },
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "checksum": {
            "type": "string",
            "enum": [CRC32],
            "description": "every part will carry its CRC32 (older agents leave this off)",
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/uploads": {
        "post": {
            "summary": "Agents: open or resume a multipart upload of one recording file",
            "security": _SECURITY,
            "parameters": [_CLASSROOM],
            "requestBody": json_content(_OPEN),
            "responses": _answers(
                {
                    "200": {"description": "already uploaded"},
                    "201": {"description": "opened; the parts still missing"},
                }
            ),
        }
    },
    "/api/v1/uploads/{upload}/urls": {
        "post": {
            "summary": "Agents: where to PUT the listed parts",
            "security": _SECURITY,
            "parameters": [_CLASSROOM, _UPLOAD],
            "requestBody": json_content(_PARTS),
            "responses": _answers({"200": {"description": "part targets"}}),
        }
    },
    "/api/v1/uploads/{upload}/parts/{n}": {
        "put": {
            "summary": "Agents: one part of an upload (local storage)",
            "security": _SECURITY,
            "parameters": [
                _CLASSROOM,
                _UPLOAD,
                {
                    "name": "n",
                    "in": "path",
                    "required": True,
                    "description": "1..parts (as open answered); every part is part_size "
                    "bytes exactly, the last one the rest",
                    "schema": {"type": "integer", "minimum": 1},
                },
            ],
            "requestBody": {"content": {"application/octet-stream": {"schema": {}}}},
            "description": "With header x-amz-checksum-crc32, a part whose bytes do not "
            "match it is refused (400) and not stored.",
            "responses": _answers({"200": {"description": "stored; ETag header"}}),
        }
    },
    "/api/v1/uploads/{upload}/complete": {
        "post": {
            "summary": "Agents: assemble the parts; storage checks the SHA-256",
            "security": _SECURITY,
            "parameters": [_CLASSROOM, _UPLOAD],
            "requestBody": json_content(_ETAGS),
            "responses": _answers({"201": {"description": "complete"}}),
        }
    },
}
