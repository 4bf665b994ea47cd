"""``/api/v1/notify/...``: who is told of alerts (subscriptions per school, or for the
county) and each channel's health. Who may change them is in ``controller.auth.roles``;
a school account only for its own school. Changes are audited by the auth middleware;
secrets are never answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of, scope_of
from controller.common.api_common import OUT_OF_SCOPE_RESPONSE, error, json_content, run_db
from controller.common.errors import InvalidRequest, NotFound
from controller.db.session import utcnow
from controller.notify.channels import DeliveryError, Message, RateLimited
from controller.notify.config import CHANNELS, SubscriptionSpec, subscription_document
from controller.notify.sender import Sender
from controller.notify.store import (
    add_subscription,
    channel_status,
    delete_subscription,
    get_subscription,
    list_subscriptions,
    record_test,
    update_subscription,
)

SUBSCRIPTIONS = "/api/v1/notify/subscriptions"
SUBSCRIPTION = "/api/v1/notify/subscriptions/{subscription}"
TEST = "/api/v1/notify/subscriptions/{subscription}/test"
STATUS = "/api/v1/notify/status"
TEST_TEXT = "classbridge 告警通知测试 / alert notification test: 此通道可用 / this channel works"
MAX_BODY_BYTES = 16 * 1024  # a subscription with 50 addresses fits many times over


class NotifyApi:
    """The routes; database work runs in a worker thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        poke: Callable[[], None] = lambda: None,
        sender: Sender | None = None,
    ) -> None:
        self._sessions = sessions
        self._poke = poke
        # The dispatcher's, so a test message counts against the robot's rate limit too.
        self._sender = sender or Sender()

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(SUBSCRIPTIONS, self.list),
            web.post(SUBSCRIPTIONS, self.add),
            web.get(SUBSCRIPTION, self.show),
            web.patch(SUBSCRIPTION, self.update),
            web.delete(SUBSCRIPTION, self.delete),
            web.post(TEST, self.test),
            web.get(STATUS, self.status),
        ]

    async def list(self, request: web.Request) -> web.StreamResponse:
        """The subscriptions in the caller's scope, secrets left out."""
        scope = scope_of(request)
        return await run_db(
            self._sessions, lambda db: web.json_response(list_subscriptions(db, scope))
        )

    async def add(self, request: web.Request) -> web.StreamResponse:
        """Add a subscription; 400 names the field that is wrong."""
        raw = await _body(request)
        if raw is None:
            return _too_large()
        scope = scope_of(request)
        who = principal_of(request).username

        def work(db: Session) -> web.StreamResponse:
            spec = SubscriptionSpec.parse(_json(raw))
            doc = add_subscription(db, spec, scope, who, utcnow())
            return web.json_response(doc, status=201)

        response = await run_db(self._sessions, work)
        self._poke()
        return response

    async def show(self, request: web.Request) -> web.StreamResponse:
        """One subscription, secrets left out."""
        scope = scope_of(request)
        sub_id = request.match_info["subscription"]
        return await run_db(
            self._sessions,
            lambda db: web.json_response(
                subscription_document(get_subscription(db, scope, sub_id))
            ),
        )

    async def update(self, request: web.Request) -> web.StreamResponse:
        """Change some fields of a subscription (the others kept, secrets too unless
        sent); 400 names the field that is wrong."""
        raw = await _body(request)
        if raw is None:
            return _too_large()
        scope = scope_of(request)
        sub_id = request.match_info["subscription"]

        def work(db: Session) -> web.StreamResponse:
            doc = update_subscription(db, scope, sub_id, _json(raw), utcnow())
            return web.json_response(doc)

        response = await run_db(self._sessions, work)
        self._poke()
        return response

    async def test(self, request: web.Request) -> web.StreamResponse:
        """Send a test message through the subscription's channel now; its outcome
        (``delivered``, ``error``) is the channel's health. 429 if the robot has no room."""
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _too_large()
        scope = scope_of(request)
        sub_id = request.match_info["subscription"]

        def find() -> tuple[int, str, dict[str, Any]]:
            with self._sessions() as db:
                sub = get_subscription(db, scope, sub_id)
                return sub.id, sub.channel, dict(sub.config or {})

        try:
            sid, channel, settings = await asyncio.to_thread(find)
        except NotFound as err:
            return error(404, str(err))
        message = Message("classbridge 测试 test", TEST_TEXT, f"### {TEST_TEXT}")
        try:
            await self._sender.send_now(channel, settings, message)
        except RateLimited as err:
            response = error(429, f"not sent: {err}")
            response.headers["Retry-After"] = str(err.retry_after_s)
            return response
        except DeliveryError as err:
            problem = str(err) or type(err).__name__
            await run_db(self._sessions, lambda db: _recorded(db, sid, problem))
            # The test ran; the channel failing is its finding, not this server's error.
            return web.json_response(
                {
                    "sent": sid,
                    "channel": channel,
                    "delivered": False,
                    "error": f"not delivered: {problem}; check the settings and try again",
                }
            )
        await run_db(self._sessions, lambda db: _recorded(db, sid, None))
        outcome = {"sent": sid, "channel": channel, "delivered": True, "error": None}
        return web.json_response(outcome)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """Delete a subscription and what it still owed."""
        scope = scope_of(request)
        sub_id = request.match_info["subscription"]
        return await run_db(
            self._sessions,
            lambda db: web.json_response(delete_subscription(db, scope, sub_id)),
        )

    async def status(self, request: web.Request) -> web.StreamResponse:
        """Each channel's health: failing since when, its last error, messages waiting."""
        scope = scope_of(request)
        return await run_db(self._sessions, lambda db: web.json_response(channel_status(db, scope)))


def _recorded(db: Session, sub_id: int, problem: str | None) -> web.Response:
    record_test(db, sub_id, problem, utcnow())
    return web.json_response({})


async def _body(request: web.Request) -> bytes | None:
    """The body, or None past MAX_BODY_BYTES (read no further than that)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    return None if len(raw) > MAX_BODY_BYTES else raw


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise InvalidRequest(f"body is not JSON ({err}); send one subscription") from None


def _too_large() -> web.Response:
    return error(413, f"body larger than {MAX_BODY_BYTES} bytes; send one subscription")


_ERROR = json_content(
    {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
)
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SUBSCRIPTION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "channel", "config"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "school": {"type": ["string", "null"]},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "config": {
            "type": "object",
            "description": "the channel's settings; secrets shown only as *_set or masked",
        },
        "min_severity": {"type": "string"},
        "quiet_hours": {"type": ["object", "null"]},
        "timezone": {"type": "string"},
        "escalation": {"type": "boolean"},
        "escalate_after_minutes": {"type": "integer"},
        "hold_down_minutes": {"type": "integer"},
        "created_by": {"type": "string"},
        "failing": {"type": "boolean"},
        "failing_since": _NULLABLE_TIME,
        "last_error": {"type": ["string", "null"]},
        "last_sent_at": _NULLABLE_TIME,
        "pending": {"type": "integer"},
    },
}
_NEW: dict[str, Any] = {
    "type": "object",
    "required": ["name", "channel", "config"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "school": {
            "type": ["string", "null"],
            "description": "the school whose alerts it receives; null: the county",
        },
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "config": {
            "type": "object",
            "description": "dingtalk: {webhook, secret}; wecom: {webhook, msgtype}; "
            "email: {host, port, security, from, to, username, password}",
        },
        "min_severity": {"type": "string", "enum": ["info", "warning", "critical"]},
        "quiet_hours": {
            "type": ["object", "null"],
            "description": 'non-critical messages held until the end: {"start": "22:00", '
            '"end": "07:00"}',
        },
        "timezone": {"type": "string"},
        "escalation": {
            "type": "boolean",
            "description": "told only of alerts unacknowledged after escalate_after_minutes",
        },
        "escalate_after_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
        "hold_down_minutes": {"type": "integer", "minimum": 0, "maximum": 1440},
    },
}
_CHANNEL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "school": {"type": ["string", "null"]},
        "channel": {"type": "string"},
        "failing": {"type": "boolean"},
        "failing_since": _NULLABLE_TIME,
        "last_error": {"type": ["string", "null"]},
        "last_sent_at": _NULLABLE_TIME,
        "pending": {"type": "integer"},
    },
}
_PARAM = [{"name": "subscription", "in": "path", "required": True, "schema": {"type": "integer"}}]
OPENAPI_PATHS: dict[str, Any] = {
    SUBSCRIPTIONS: {
        "get": {
            "summary": "Alert notification subscriptions (告警通知) in the caller's scope",
            "responses": {
                "200": {
                    "description": "subscriptions, secrets left out",
                    **json_content({"type": "array", "items": _SUBSCRIPTION}),
                }
            },
        },
        "post": {
            "summary": "Add a subscription: DingTalk or WeCom robot, or e-mail, for a school "
            "or the county (admin, scheduler, technician)",
            "requestBody": {"required": True, **json_content(_NEW)},
            "responses": {
                "201": {"description": "added", **json_content(_SUBSCRIPTION)},
                "400": {"description": "a bad field, named", **_ERROR},
                "403": {**OUT_OF_SCOPE_RESPONSE, "description": "role may not, or other school"},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes", **_ERROR},
            },
        },
    },
    SUBSCRIPTION: {
        "get": {
            "summary": "One subscription, secrets left out",
            "parameters": _PARAM,
            "responses": {
                "200": {"description": "the subscription", **json_content(_SUBSCRIPTION)},
                "404": {"description": "no such subscription in scope", **_ERROR},
            },
        },
        "patch": {
            "summary": "Change some fields of a subscription (admin, scheduler, technician); "
            "config is merged into the stored one, so secrets are kept unless sent",
            "parameters": _PARAM,
            "requestBody": {
                "required": True,
                **json_content({**_NEW, "required": [], "minProperties": 1}),
            },
            "responses": {
                "200": {"description": "changed", **json_content(_SUBSCRIPTION)},
                "400": {"description": "a bad field, named", **_ERROR},
                "403": {**OUT_OF_SCOPE_RESPONSE, "description": "role may not, or other school"},
                "404": {"description": "no such subscription in scope", **_ERROR},
                "413": {"description": f"body larger than {MAX_BODY_BYTES} bytes", **_ERROR},
            },
        },
        "delete": {
            "summary": "Delete a subscription (admin, scheduler, technician)",
            "parameters": _PARAM,
            "responses": {
                "200": {
                    "description": "deleted",
                    **json_content(
                        {"type": "object", "properties": {"deleted": {"type": "integer"}}}
                    ),
                },
                "403": {"description": "role may not", **_ERROR},
                "404": {"description": "no such subscription in scope", **_ERROR},
            },
        },
    },
    TEST: {
        "post": {
            "summary": "Send a test message through a subscription's channel now (admin, "
            "scheduler, technician); the outcome is the channel's health",
            "parameters": _PARAM,
            "responses": {
                "200": {
                    "description": "tried: delivered, or the channel's error",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "sent": {"type": "integer"},
                                "channel": {"type": "string"},
                                "delivered": {"type": "boolean"},
                                "error": {"type": ["string", "null"]},
                            },
                        }
                    ),
                },
                "404": {"description": "no such subscription in scope", **_ERROR},
                "429": {"description": "the robot took its 20 messages this minute", **_ERROR},
            },
        }
    },
    STATUS: {
        "get": {
            "summary": "Each notification channel's health: failing since, last error, "
            "messages waiting",
            "responses": {
                "200": {
                    "description": "channels, failing ones first",
                    **json_content(
                        {
                            "type": "object",
                            "properties": {
                                "channels": {"type": "array", "items": _CHANNEL},
                                "failing": {"type": "integer"},
                            },
                        }
                    ),
                }
            },
        }
    },
}
