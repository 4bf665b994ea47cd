"""Patrol's routes as the API describes them (OpenAPI): the live list, watching a lesson
on its relay or through Janus, the Janus viewer's answer, and hanging up."""

from __future__ import annotations

from typing import Any

from controller.common.api_common import json_content

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_LESSON = {"name": "lesson", "in": "path", "required": True, "schema": {"type": "string"}}
_FEED_REF = {
    "type": "object",
    "required": ["classroom", "track", "kind"],
    "properties": {
        "classroom": {"type": "string"},
        "track": {"type": "string"},
        "kind": {"enum": ["video", "audio"]},
    },
}
_FEED = {
    "type": "object",
    "properties": {
        **_FEED_REF["properties"],  # type: ignore[dict-item]
        "fps": {"type": ["number", "null"], "description": "sender's heartbeat"},
        "bitrate_bps": {"type": ["number", "null"], "description": "sender's heartbeat"},
        "loss_pct": {
            "type": ["number", "null"],
            "description": "worst packet loss, publisher's uplink or a receiver's downlink (RTCP)",
        },
        "rtt_ms": {
            "type": ["number", "null"],
            "description": "publisher's RTCP round trip to the relay",
        },
        "frames_in": {"type": "integer", "description": "frames the relay got"},
        "subscribers": {"type": "integer"},
        "frame_age_s": {"type": ["number", "null"], "description": "since the last frame"},
        "frozen_s": {"type": "number", "description": "frame_age_s when over 1 s, else 0"},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/live": {
        "get": {
            "summary": "Live lessons (patrol) with their feeds and the agents' latest QoS",
            "description": "Loss and round trip come from the agents' RTCP statistics; "
            "glass-to-glass latency is not live, and each lesson's 'unavailable' says so.",
            "responses": {
                "200": {
                    "description": "lessons",
                    **json_content(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "backend": {"enum": ["builtin", "janus"]},
                                    "lead": {"type": "string"},
                                    "receivers": {"type": "array", "items": {"type": "string"}},
                                    "feeds": {"type": "array", "items": _FEED},
                                    "classrooms": {"type": "object"},
                                    "unavailable": {"type": "object"},
                                },
                            },
                        }
                    ),
                }
            },
        }
    },
    "/api/v1/lessons/{lesson}/watch": {
        "post": {
            "summary": "Watch a live lesson over WebRTC (receive-only, H.264 + Opus)",
            "description": "A lesson on the built-in relay ('backend': 'builtin' in "
            "/api/v1/live): the offer has one recvonly transceiver per entry of 'feeds', in "
            "the same order, and the relay answers. A lesson on Janus ('backend': 'janus'): "
            "send only 'feeds'; the controller subscribes the viewer in the lesson's room and "
            "returns Janus's offer with, per feed, its mid there; POST the browser's answer to "
            ".../watch/{viewer}/answer within 30 s. Every staff role may watch feeds of its "
            "school scope; it is audited as action 'watch', and the end as 'watch_end' with "
            "its duration.",
            "parameters": [_LESSON],
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["feeds"],
                        "properties": {
                            "sdp": {"type": "string", "description": "relay lessons only"},
                            "feeds": {"type": "array", "items": _FEED_REF},
                        },
                    }
                ),
            },
            "responses": {
                "201": {
                    "description": "the relay's answer, or Janus's offer, and the viewer id",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "sdp": {"type": "string"},
                                "type": {"enum": ["answer", "offer"]},
                                "viewer": {"type": "string"},
                                "mids": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "Janus only: each feed's mid in the offer",
                                },
                            },
                        }
                    ),
                },
                "400": {"description": "bad offer or unknown feed", **json_content(_ERROR)},
                "403": {"description": "a feed outside your scope", **json_content(_ERROR)},
                "404": {"description": "lesson not live here", **json_content(_ERROR)},
                "503": {"description": "the lesson's Janus did not answer", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/lessons/{lesson}/watch/{viewer}/answer": {
        "post": {
            "summary": "The browser's SDP answer to Janus's offer (lessons on Janus)",
            "description": "Only the session that opened the viewer may answer. Media then "
            "flows between the browser and Janus. An answer Janus refuses closes the viewer.",
            "parameters": [
                _LESSON,
                {"name": "viewer", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "requestBody": {
                "required": True,
                **json_content(
                    {
                        "type": "object",
                        "required": ["sdp"],
                        "properties": {"sdp": {"type": "string"}},
                    }
                ),
            },
            "responses": {
                "200": {"description": "the viewer's media started"},
                "400": {"description": "a bad or refused answer", **json_content(_ERROR)},
                "403": {"description": "another session's viewer", **json_content(_ERROR)},
                "404": {"description": "no such viewer waiting", **json_content(_ERROR)},
            },
        }
    },
    "/api/v1/lessons/{lesson}/watch/{viewer}": {
        "delete": {
            "summary": "Stop watching (the viewer's own session, or an admin)",
            "parameters": [
                _LESSON,
                {"name": "viewer", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "closed"},
                "403": {"description": "another session's viewer", **json_content(_ERROR)},
                "404": {"description": "no such viewer", **json_content(_ERROR)},
            },
        }
    },
}
