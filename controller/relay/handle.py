"""What the orchestrator, patrol and metrics need of one lesson's relay.

Both ``controller.relay.room.LessonRelay`` (in this process) and
``controller.relay.proxy.RelayProxy`` (in the relay process) provide it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from controller.relay.room import FeedRef
from protocols.messages import TrackMid


class FeedInfo(Protocol):
    """One relayed feed, as patrol lists it."""

    @property
    def source_classroom(self) -> str:
        """The publishing classroom."""

    @property
    def track(self) -> str:
        """The track's name (teacher, panel, mic…)."""

    @property
    def kind(self) -> str:
        """video or audio."""

    @property
    def frames_in(self) -> int:
        """Frames received from the publisher."""

    @property
    def subscribers(self) -> int:
        """Connections receiving it."""


class RelayHandle(Protocol):
    """One lesson's relay."""

    @property
    def lesson_id(self) -> str:
        """The lesson it relays."""

    async def answer(self, classroom_id: str, sdp: str, tracks: list[TrackMid]) -> str:
        """Answer an agent's offer."""

    async def answer_viewer(
        self,
        viewer_id: str,
        sdp: str,
        feeds: list[FeedRef],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Answer a console viewer's receive-only offer."""

    async def close_viewer(self, viewer_id: str) -> bool:
        """Hang up a console viewer; False if there was none by that id."""

    async def close(self) -> None:
        """Close every connection and feed."""

    @property
    def feeds(self) -> Sequence[FeedInfo]:
        """Every feed in the lesson."""

    @property
    def viewers(self) -> list[str]:
        """The open console viewers."""

    def frame_age_s(self, source_classroom: str, track: str) -> float | None:
        """Seconds since the last frame of a feed; None if none came."""

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-feed counters, keyed ``classroom/track``."""
