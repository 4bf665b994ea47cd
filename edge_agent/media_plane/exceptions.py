"""Errors of the agent's Janus client; each names the instance URL and what to do.

Hierarchy::

    AgentError
    └── JanusMediaError        anything about a lesson's Janus instance (``url``)
        ├── JanusLost          no answer, connection refused or reset, session gone:
        │                      the instance is dead or cut off; re-join where the
        │                      controller places the lesson next
        ├── JanusDenied        the VideoRoom refused us (wrong PIN, no such room): the
        │                      placement we hold is wrong or stale; ask the controller
        └── JanusProtocolError Janus answered something this client does not understand
"""

from __future__ import annotations

from edge_agent.errors import AgentError


class JanusMediaError(AgentError):
    """A lesson's Janus instance failed us; ``url`` names it."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"janus at {url}: {message}")
        self.url = url


class JanusLost(JanusMediaError):
    """The instance stopped answering or forgot our session; media through it has ended."""


class JanusDenied(JanusMediaError):
    """The VideoRoom plugin refused a request; ``code`` is its error_code."""

    def __init__(self, url: str, request: str, code: int, reason: str, advice: str) -> None:
        super().__init__(url, f"VideoRoom {request} refused: {reason} (error {code}); {advice}")
        self.code = code
        self.reason = reason


class JanusProtocolError(JanusMediaError):
    """An answer that is not what Janus's API documents (wrong endpoint, proxy page...)."""
