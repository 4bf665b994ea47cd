"""One classroom's media of a lesson through Janus: publish, and follow the remote feeds.

The ``JoinLesson`` already says what the role needs: a receiving room subscribes to the
lead's teacher camera, panel and microphone, the lead to each receiving room's camera
and microphone. Each remote classroom is subscribed to as soon as its feed carries those
tracks, and again whenever it re-joins with a new feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_agent.media_plane.exceptions import JanusLost, JanusMediaError
from edge_agent.media_plane.janus_session import JanusSession
from edge_agent.media_plane.publisher import EstimateSink, JanusPublisher, TrackFactory
from edge_agent.media_plane.subscriber import JanusSubscriber, TapFactory
from edge_agent.sources import MediaSource
from protocols.messages import JanusPlacement, JoinLesson, Subscription
from protocols.network_profile import NetworkProfile

log = logging.getLogger(__name__)

Subscribed = Callable[[JanusSubscriber], None]
RETRY_S = 1.0


class JanusLessonMedia:
    """A classroom in a lesson's VideoRoom: its publisher and one subscriber per remote room.

    ``on_subscribed`` is called with each (re)started subscription, so the caller can
    drain its decoded tracks; ``lost`` is set when the instance is lost.
    """

    def __init__(
        self,
        classroom_id: str,
        join: JoinLesson,
        placement: JanusPlacement,
        sources: dict[str, MediaSource],
        *,
        tap: TapFactory | None = None,
        on_subscribed: Subscribed | None = None,
        on_lost: Callable[[JanusLost], None] | None = None,
        on_estimate: EstimateSink | None = None,
        network: NetworkProfile | None = None,
        track_for: TrackFactory | None = None,
    ) -> None:
        self.classroom_id = classroom_id
        self.join = join
        self.placement = placement
        self.session = JanusSession(placement.api_url, on_lost=on_lost)
        self.publisher = JanusPublisher(
            self.session,
            placement,
            classroom_id,
            sources,
            join.publish,
            on_estimate=on_estimate,
            network=network,
            track_for=track_for,
        )
        self.network = network
        self.subscribers: dict[str, JanusSubscriber] = {}
        self._wanted: dict[str, list[Subscription]] = {}
        for sub in join.subscribe:
            self._wanted.setdefault(sub.source_classroom, []).append(sub)
        self._tap = tap
        self._on_subscribed = on_subscribed
        self._follow_task: asyncio.Task[None] | None = None

    @property
    def lost(self) -> asyncio.Event:
        """Set once the Janus instance is lost."""
        return self.session.lost

    async def start(self) -> None:
        """Create the session, publish, and start following the remote classrooms' feeds."""
        await self.session.start()
        try:
            await self.publisher.start()
        except BaseException:
            await self.stop()
            raise
        self._follow_task = asyncio.create_task(
            self._follow(), name=f"janus-follow-{self.join.lesson_id}"
        )
        self._follow_task.add_done_callback(_log_failure)

    def all_subscribed(self) -> bool:
        """Whether every remote classroom the lesson lists is subscribed to."""
        return set(self.subscribers) == set(self._wanted)

    async def _follow(self) -> None:
        feeds = self.publisher.feeds
        while not self.session.lost.is_set():
            changed = feeds.change()
            failed = False
            for classroom, subs in self._wanted.items():
                feed = feeds.find(classroom, [s.track for s in subs])
                current = self.subscribers.get(classroom)
                if current is not None and (feed is None or feed.feed_id != current.feed.feed_id):
                    # The classroom left or re-joined: its old subscription carries nothing.
                    del self.subscribers[classroom]
                    await current.stop()
                    current = None
                if feed is None or current is not None:
                    continue
                subscriber = JanusSubscriber(
                    self.session, self.placement, feed, subs, tap=self._tap, network=self.network
                )
                try:
                    await subscriber.start()
                except JanusMediaError as err:
                    log.warning(
                        "lesson %s: subscribing to %s failed: %s",
                        self.join.lesson_id,
                        classroom,
                        err,
                    )
                    await subscriber.stop()
                    failed = True
                    continue
                self.subscribers[classroom] = subscriber
                if self._on_subscribed is not None:
                    self._on_subscribed(subscriber)
            lost = asyncio.ensure_future(self.session.lost.wait())
            change = asyncio.ensure_future(changed.wait())
            try:
                # A failed subscription is tried again in a second even with no change.
                await asyncio.wait(
                    {lost, change},
                    timeout=RETRY_S if failed else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                lost.cancel()
                change.cancel()

    async def stop(self) -> None:
        """Unsubscribe, unpublish and end the session (quickly, if the instance is gone)."""
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None
        for subscriber in list(self.subscribers.values()):
            await subscriber.stop()
        self.subscribers.clear()
        await self.publisher.stop()
        await self.session.stop()


def _log_failure(task: asyncio.Task[None]) -> None:
    # A subscription loop that dies must say so: the room would silently see nobody.
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
