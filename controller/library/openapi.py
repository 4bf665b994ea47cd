"""The resource library's part of the OpenAPI description."""

from __future__ import annotations

from typing import Any

from controller.common.api_common import json_content
from controller.library.clip import MAX_CLIP_S
from controller.library.metadata import FIELDS
from controller.library.store import STATUSES

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_META = {
    "type": "object",
    "properties": {name: {"type": "string", "maxLength": cap} for name, (cap, _) in FIELDS.items()},
}
_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["recording", "clip"]},
        "status": {"type": "string", "enum": list(STATUSES)},
        "lesson": _STR,
        "classroom": _STR,
        "track": _STR,
        "clip": {
            "type": ["object", "null"],
            "description": "where the clip was cut from the recording (key frames)",
            "properties": {"start_s": {"type": "number"}, "end_s": {"type": "number"}},
        },
        "duration_s": {"type": ["number", "null"]},
        "codec": _NSTR,
        "metadata": _META,
        "requested_by": _STR,
        "requested_at": _TIME,
        "reviewed_by": _NSTR,
        "reviewed_at": _TIME,
        "review_reason": _STR,
        "unpublished_by": _NSTR,
        "unpublished_at": _TIME,
        "unpublish_reason": _STR,
        "media_url": _STR,
        "package_url": {**_NSTR, "description": "set once approved"},
    },
}
_SOURCE = {
    "lesson": {"type": "string", "maxLength": 64},
    "classroom": {"type": "string", "maxLength": 64},
    "track": {"type": "string", "maxLength": 64, "description": "the track key (file stem)"},
}
_META_FIELDS = {name: {"type": "string", "maxLength": cap} for name, (cap, _) in FIELDS.items()}
_SECONDS = {"type": "number", "minimum": 0}
_ITEM_PARAM = {"name": "item", "in": "path", "required": True, "schema": {"type": "integer"}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, **json_content(_ERROR)}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        **json_content({"type": "object", "properties": properties, "required": required}),
    }


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/library/items": {
        "get": {
            "summary": "Resource library items, newest request first (approved by default)",
            "description": "The review queue (status pending, rejected, unpublished or all) "
            "is for administrators, schedulers and inspectors. Audited as personal data.",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": [*STATUSES, "all"]},
                },
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {
                    "description": "one page",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "items": {"type": "array", "items": _ITEM},
                            },
                        }
                    ),
                },
                "400": _err("bad query, or a queue the role may not see"),
            },
        },
        "post": {
            "summary": "Ask to publish a recording with its metadata (admin, scheduler)",
            "description": "The item is pending until an inspector or administrator other "
            "than the requester approves it. Metadata left out comes from the lesson. "
            "Asking again while one is pending or approved returns it (200).",
            "requestBody": _body({**_SOURCE, **_META_FIELDS}, ["lesson", "classroom", "track"]),
            "responses": {
                "201": {"description": "pending", **json_content(_ITEM)},
                "200": {"description": "already pending or approved", **json_content(_ITEM)},
                "400": _err("a field is missing, too long or of the wrong type"),
                "404": _err("no such recording (or out of the caller's school)"),
                "413": _err("body over 16 KiB"),
            },
        },
    },
    "/api/v1/library/clips": {
        "post": {
            "summary": f"Cut a clip of at most {MAX_CLIP_S:g} s and ask to publish it "
            "(admin, scheduler)",
            "description": "A remux at key frames, no re-encode: the clip starts at the key "
            "frame at or before start_s and ends at the first at or after end_s.",
            "requestBody": _body(
                {**_SOURCE, **_META_FIELDS, "start_s": _SECONDS, "end_s": _SECONDS},
                ["lesson", "classroom", "track", "start_s", "end_s"],
            ),
            "responses": {
                "201": {"description": "the clip, pending review", **json_content(_ITEM)},
                "400": _err("over 300 s, start past the end, end before start, bad field"),
                "404": _err("no such recording"),
                "413": _err("body over 16 KiB"),
                "422": _err("the recording could not be cut"),
                "503": _err("storage failed; retry later"),
            },
        }
    },
    "/api/v1/library/items/{item}": {
        "get": {
            "summary": "One library item",
            "parameters": [_ITEM_PARAM],
            "responses": {
                "200": {"description": "the item", **json_content(_ITEM)},
                "404": _err("no such item (or not visible to the caller)"),
            },
        }
    },
    "/api/v1/library/items/{item}/review": {
        "post": {
            "summary": "Approve or reject a pending item (admin, inspector; not the requester)",
            "parameters": [_ITEM_PARAM],
            "requestBody": _body(
                {
                    "decision": {"type": "string", "enum": ["approve", "reject"]},
                    "reason": {"type": "string", "maxLength": 500},
                },
                ["decision"],
            ),
            "responses": {
                "200": {"description": "decided", **json_content(_ITEM)},
                "400": _err("bad decision, or a rejection without a reason"),
                "403": _err("the requester may not review their own request"),
                "404": _err("no such item (or not visible to the caller)"),
                "409": _err("the item is not pending"),
                "413": _err("body over 16 KiB"),
            },
        }
    },
    "/api/v1/library/items/{item}/unpublish": {
        "post": {
            "summary": "Unpublish an item (admin, scheduler, inspector); audited",
            "parameters": [_ITEM_PARAM],
            "requestBody": _body({"reason": {"type": "string", "maxLength": 500}}, ["reason"]),
            "responses": {
                "200": {"description": "unpublished", **json_content(_ITEM)},
                "400": _err("no reason given"),
                "404": _err("no such item (or not visible to the caller)"),
                "409": _err("already rejected or unpublished"),
                "413": _err("body over 16 KiB"),
            },
        }
    },
    "/api/v1/library/items/{item}/media": {
        "get": {
            "summary": "Play or download an item's MP4 (byte ranges); audited",
            "parameters": [_ITEM_PARAM],
            "responses": {
                "200": {"description": "the file", "content": {"video/mp4": {}}},
                "206": {"description": "a byte range", "content": {"video/mp4": {}}},
                "302": {"description": "redirect to the storage's signed URL"},
                "404": _err("no such item, or its file is gone"),
            },
        }
    },
    "/api/v1/library/items/{item}/package": {
        "get": {
            "summary": "An approved item as a zip: the MP4 and metadata.json; audited",
            "description": "metadata.json's fields are described in docs/resource_package.md.",
            "parameters": [_ITEM_PARAM],
            "responses": {
                "200": {"description": "the package", "content": {"application/zip": {}}},
                "404": _err("no such item"),
                "409": _err("the item is not approved"),
                "503": _err("the item's file could not be read; retry later"),
            },
        }
    },
}
