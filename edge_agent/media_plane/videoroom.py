"""A VideoRoom plugin handle: attach, plugin requests with errors translated, detach."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from edge_agent.media_plane.exceptions import JanusDenied, JanusMediaError, JanusProtocolError
from edge_agent.media_plane.janus_session import Event, EventSink, JanusSession

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
NO_SUCH_ROOM = 426  # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
NO_SUCH_FEED = 428  # JANUS_VIDEOROOM_ERROR_NO_SUCH_FEED
UNAUTHORIZED = 433  # JANUS_VIDEOROOM_ERROR_UNAUTHORIZED (wrong PIN)

_ADVICE = {
    NO_SUCH_ROOM: "the lesson's room is gone from this instance (ended, or the instance "
    "restarted): ask the controller for the lesson's placement again",
    UNAUTHORIZED: "the PIN this agent holds is not the room's (a stale placement?): ask the "
    "controller for the lesson's placement again",
    NO_SUCH_FEED: "that classroom has not published yet, or has left the room",
}


class VideoRoomHandle:
    """One handle on the VideoRoom plugin, inside a ``JanusSession``."""

    def __init__(self, session: JanusSession, on_event: EventSink | None = None) -> None:
        self.session = session
        self._on_event = on_event
        self.handle_id: int | None = None

    async def attach(self) -> None:
        """Attach to the VideoRoom plugin."""
        data = await self.session.post({"janus": "attach", "plugin": PLUGIN})
        try:
            self.handle_id = int(data["data"]["id"])
        except (KeyError, TypeError, ValueError) as err:
            raise JanusProtocolError(self.session.url, f"attach answered {data!r}") from err
        self.session.route(self.handle_id, self._on_event)

    async def request(self, body: dict[str, Any], jsep: dict[str, str] | None = None) -> Event:
        """Send a VideoRoom request; the answering event (a refusal raises ``JanusDenied``)."""
        assert self.handle_id is not None, "attach() first"
        event = await self.session.message(self.handle_id, body, jsep)
        plugin = (event.get("plugindata") or {}).get("data")
        if not isinstance(plugin, dict):
            raise JanusProtocolError(
                self.session.url, f"VideoRoom {body.get('request')} answered without plugin data"
            )
        if "error_code" in plugin or "error" in plugin:
            code = int(plugin.get("error_code", 0))
            raise JanusDenied(
                self.session.url,
                str(body.get("request")),
                code,
                str(plugin.get("error", "")),
                _ADVICE.get(code, "see the instance's log"),
            )
        return event

    async def leave(self, room: int) -> None:
        """Leave ``room`` (best effort: destroying the session cleans up), then detach."""
        if self.handle_id is not None and not self.session.lost.is_set():
            try:
                await self.request({"request": "leave"})
            except JanusMediaError as err:
                log.info("janus room %d: leave failed: %s", room, err)
        await self.detach()

    async def detach(self) -> None:
        """Detach the handle (best effort: a lost instance has forgotten it anyway)."""
        if self.handle_id is None:
            return
        self.session.route(self.handle_id, None)
        if not self.session.lost.is_set():
            with contextlib.suppress(JanusMediaError):
                await self.session.post(
                    {"janus": "detach"}, path=f"/{self.session.session_id}/{self.handle_id}"
                )
        self.handle_id = None
