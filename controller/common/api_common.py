"""What every JSON API module shares: the error shape and running a handler's database
work off the event loop, with the controller's errors mapped to HTTP statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.common.errors import InvalidRequest, NotFound, OutOfScope


def error(status: int, message: str) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status)


async def run_db(
    sessions: sessionmaker[Session], work: Callable[[Session], web.StreamResponse]
) -> web.StreamResponse:
    """Run ``work`` with a session in a worker thread; NotFound → 404, OutOfScope → 403,
    InvalidRequest → 400."""

    def job() -> web.StreamResponse:
        with sessions() as db:
            return work(db)

    try:
        return await asyncio.to_thread(job)
    except NotFound as err:
        return error(404, str(err))
    except OutOfScope as err:
        return error(403, str(err))
    except InvalidRequest as err:
        return error(400, str(err))


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None when it is larger than ``limit`` bytes (declared or
    sent): the caller answers 413 in its own words."""
    if (request.content_length or 0) > limit:
        return None
    raw = await request.content.read(limit + 1)
    return None if len(raw) > limit else raw


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``content`` entry for a JSON body with ``schema``."""
    return {"content": {"application/json": {"schema": schema}}}


# The OpenAPI response of a school-scoped account naming another school's classroom.
OUT_OF_SCOPE_RESPONSE: dict[str, Any] = {
    "description": "a classroom (or school) outside the caller's school: a county account "
    "must do it",
    **json_content(
        {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    ),
}
