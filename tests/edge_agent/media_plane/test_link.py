"""JanusLink: a lost room is joined again on the same placement, with backoff, until it
works or the link is replaced; stopping it ends the retries."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, cast

import pytest

from edge_agent.media_plane.exceptions import JanusLost
from edge_agent.media_plane.lesson import JanusLessonMedia
from edge_agent.media_plane.link import JanusLink
from protocols.messages import JanusPlacement, JoinLesson

PLACED = JanusPlacement(api_url="http://10.0.0.5:8088/janus", room=7, pin="p", instance="a")
JOIN = JoinLesson(lesson_id="l1", role="lead", publish=[], subscribe=[], start_at=0, end_at=1)


class RoomMedia:
    """Stands in for JanusLessonMedia: starts, or fails while the instance is away."""

    def __init__(self, instance: Instance, placement: JanusPlacement) -> None:
        self.instance = instance
        self.placement = placement
        self.join = JOIN
        self.lost = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        self.instance.attempts.append(asyncio.get_running_loop().time())
        if not self.instance.up:
            raise JanusLost(self.placement.api_url, "connection refused")
        self.instance.live.append(self)

    async def stop(self) -> None:
        self.stopped = True


class Instance:
    """A Janus instance that can go away and come back."""

    def __init__(self) -> None:
        self.up = True
        self.attempts: list[float] = []
        self.live: list[RoomMedia] = []

    def make(self, placement: JanusPlacement) -> JanusLessonMedia:
        return cast(JanusLessonMedia, RoomMedia(self, placement))


async def test_a_lost_room_is_joined_again_with_backoff_once_the_instance_is_back() -> None:
    instance = Instance()
    ups: list[Any] = []
    downs: list[float] = []
    link = JanusLink(
        PLACED,
        instance.make,
        on_up=ups.append,
        on_down=lambda: downs.append(0),
        backoff_s=(0.05, 0.1, 0.2),
    )
    await link.start()
    assert len(ups) == 1 and link.media is ups[0]
    first = instance.live[0]
    instance.up = False
    first.lost.set()  # the instance died
    await asyncio.sleep(0.5)
    assert downs == [0] and first.stopped and link.media is None
    tried = instance.attempts[1:]
    assert len(tried) >= 3  # 0.05, then 0.1, then 0.2 s apart: backing off
    gaps = [b - a for a, b in itertools.pairwise(tried)]
    assert gaps[0] < gaps[-1]
    instance.up = True  # it restarted (or only stalled): same room, same PIN
    await asyncio.sleep(0.4)
    assert len(ups) == 2 and link.media is instance.live[1]
    assert cast(RoomMedia, link.media).placement == PLACED
    await link.stop()
    assert instance.live[1].stopped


async def test_stopping_the_link_ends_its_retries() -> None:
    instance = Instance()
    link = JanusLink(PLACED, instance.make, on_up=lambda m: None, on_down=lambda: None)
    await link.start()
    instance.up = False
    instance.live[0].lost.set()
    await asyncio.sleep(0.1)
    await link.stop()  # a new placement came: this link is replaced
    tried = len(instance.attempts)
    await asyncio.sleep(0.7)
    assert len(instance.attempts) == tried and link.media is None


async def test_a_first_join_that_fails_raises_and_cleans_up() -> None:
    instance = Instance()
    instance.up = False
    made: list[RoomMedia] = []

    def make(placement: JanusPlacement) -> JanusLessonMedia:
        media = RoomMedia(instance, placement)
        made.append(media)
        return cast(JanusLessonMedia, media)

    link = JanusLink(PLACED, make, on_up=lambda m: None, on_down=lambda: None)
    with pytest.raises(JanusLost, match="connection refused"):
        await link.start()
    assert made[0].stopped and link.media is None
