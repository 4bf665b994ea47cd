"""Request body limits per route, enforced before a body is read (ARCHITECTURE §9).

Every route has a limit; ``DEFAULT_BODY_LIMIT`` unless the table names another. A declared
``Content-Length`` above it is answered 413 at once, and the connection is closed rather
than drained. A chunked body is cut off as soon as it passes the limit (aiohttp's
``client_max_size``, set per request). A route marked ``STREAMED`` reads its own body and
bounds it itself, after it has checked who is sending (an agent's part upload).

A refusal (any 4xx or 5xx) that leaves part of the body unread closes the connection once
the answer is written: aiohttp would otherwise keep reading the rest, for up to ten
seconds, to keep the connection alive. Closing it is the one reach into aiohttp's
connection handler (``request.protocol``), kept here and pinned by
``tests/controller/test_body_limits.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from controller.auth.middleware import route_pattern

DEFAULT_BODY_LIMIT = 1024 * 1024
SIGN_IN_BODY_LIMIT = 4 * 1024
STREAMED = 0  # the handler bounds the body itself, once it knows who is sending

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def too_large(limit: int, what: str, declared: int | None = None) -> web.Response:
    """A 413 that names the limit (the middleware closes the connection after it)."""
    sent = f"a body of {declared} bytes" if declared is not None else "a longer body"
    response = web.json_response(
        {"error": f"{what} takes at most {limit} bytes of body; got {sent}", "limit": limit},
        status=413,
    )
    return response


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Write the answer, then close the connection instead of draining the body."""
    response.force_close()
    if not response.prepared:
        await response.prepare(request)
        await response.write_eof()
    # transport.close() underneath flushes what is written, then closes.
    request.protocol.force_close()


class BodyLimits:
    """The per-route table; ``middleware`` goes first in the application's middlewares."""

    def __init__(
        self, per_route: Mapping[tuple[str, str], int], default: int = DEFAULT_BODY_LIMIT
    ) -> None:
        self._per_route = dict(per_route)
        self.default = default
        self.refused = 0

    def limit_for(self, method: str, pattern: str | None) -> int:
        """The body limit of ``method pattern`` (``STREAMED``: the handler's own)."""
        if pattern is None:
            return self.default
        return self._per_route.get((method, pattern), self.default)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse an oversized body before it is read; bound what the handler may read."""
        pattern = route_pattern(request)
        limit = self.limit_for(request.method, pattern)
        what = f"{request.method} {pattern or request.path}"
        if limit != STREAMED:
            declared = request.content_length
            if declared is not None and declared > limit:
                self.refused += 1
                response: web.StreamResponse = too_large(limit, what, declared)
                await _answer_and_close(request, response)
                return response
            request = request.clone(client_max_size=limit)
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            response = too_large(limit, what)
        if response.status == 413:
            self.refused += 1
        if response.status >= 400 and not request.content.is_eof():
            await _answer_and_close(request, response)
        return response
