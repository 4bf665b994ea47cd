"""Rooms, health, placement and re-placement on real Janus instances."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest
from benchlib.janus import JanusError as ClientRefused
from benchlib.janus import JanusVideoRoom
from media_plane_fixtures import StartJanus, instance, plane_config

from controller.media_plane.exceptions import MediaPlaneError, NoCapacity
from controller.media_plane.plane import MediaPlane, Replaced

pytestmark = [pytest.mark.janus, pytest.mark.timeout(60)]


async def test_a_lessons_room_is_created_joined_counted_and_destroyed(
    start_janus: StartJanus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    janus = await start_janus()
    plane = MediaPlane(plane_config({"county-a": instance(janus)}))
    await plane.start()
    participant = JanusVideoRoom(janus.url)
    await participant.start()
    try:
        assert plane.watcher.state("county-a").healthy
        placed = await plane.rooms.open("lesson-7")
        assert (placed.backend, placed.instance, placed.api_url) == ("janus", "county-a", janus.url)
        assert placed.room and len(placed.secret) >= 32 and len(placed.pin) >= 16
        assert placed.secret not in repr(placed) and placed.pin not in repr(placed)
        assert await plane.rooms.open("lesson-7") == placed  # idempotent
        assert await plane.rooms.exists("lesson-7")

        # The PIN admits a participant; a wrong one does not.
        with pytest.raises(ClientRefused, match="wrong pin"):
            await participant.join(placed.room, "intruder", pin="not-the-pin")
        await participant.join(placed.room, "lead classroom", pin=placed.pin)
        await plane.watcher.poll_once()
        state = plane.watcher.state("county-a")
        assert (state.rooms, state.participants, state.healthy) == (1, 1, True)
        assert state.last_ok is not None and state.error == ""

        await plane.rooms.close("lesson-7")
        answer = await plane.clients["county-a"].videoroom(
            {"request": "exists", "room": placed.room}
        )
        assert answer["exists"] is False
        await plane.rooms.close("lesson-7")  # closing twice is fine
        await plane.rooms.close("never-placed")
        await plane.watcher.poll_once()
        assert plane.watcher.state("county-a").rooms == 0
    finally:
        await participant.stop()
        await plane.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "lesson-7" in logged
    assert placed.secret not in logged and placed.pin not in logged


async def test_lessons_spread_over_two_instances_until_full(start_janus: StartJanus) -> None:
    a, b = await start_janus(), await start_janus()
    tables = {"county-a": instance(a, capacity=2), "county-b": instance(b, capacity=1)}
    plane = MediaPlane(plane_config(tables))
    await plane.start()
    try:
        first, second, third = [await plane.rooms.open(f"lesson-{n}") for n in (1, 2, 3)]
        # a is 0 of 2 and b 0 of 1: a by name; then b (0 of 1 against 1 of 2); then a.
        assert [p.instance for p in (first, second, third)] == ["county-a", "county-b", "county-a"]
        assert second.reason == "county-b: least loaded healthy instance (0 of 1 lessons)"
        assert third.reason == (
            "county-a: least loaded healthy instance (1 of 2 lessons); "
            "county-b full (1 of 1 lessons)"
        )
        await plane.watcher.poll_once()
        assert plane.watcher.state("county-a").rooms == 2
        assert plane.watcher.state("county-b").rooms == 1
        with pytest.raises(NoCapacity) as caught:
            await plane.rooms.open("lesson-4")
        assert "county-a full (2 of 2 lessons); county-b full (1 of 1 lessons)" in str(caught.value)
        assert plane.rooms.placement("lesson-4") is None

        # Ending a lesson frees its place at once (the watcher has not polled since).
        await plane.rooms.close("lesson-2")
        assert (await plane.rooms.open("lesson-4")).instance == "county-b"

        # A room that is not ours (a previous run's) takes a place once the watcher sees it.
        await plane.rooms.close("lesson-1")
        foreign = {"request": "create", "room": 99, "description": "left over"}
        await plane.clients["county-a"].videoroom(foreign)
        await plane.watcher.poll_once()
        with pytest.raises(NoCapacity, match=r"county-a full \(2 of 2 lessons\)"):
            await plane.rooms.open("lesson-5")
        await plane.clients["county-a"].videoroom({"request": "destroy", "room": 99})
        await plane.watcher.poll_once()
        assert (await plane.rooms.open("lesson-5")).instance == "county-a"
    finally:
        for n in (3, 4, 5):
            await plane.rooms.close(f"lesson-{n}")
        await plane.stop()

    fallback = MediaPlane(plane_config(tables, fallback_to_builtin=True))
    await fallback.start()
    try:
        for n in (1, 2, 3):
            await fallback.rooms.open(f"lesson-{n}")
        extra = await fallback.rooms.open("lesson-4")
        assert extra.backend == "builtin" and extra.room is None
        assert "no Janus instance fits" in extra.reason and "county-b full" in extra.reason
    finally:
        await fallback.stop()


async def test_a_killed_instance_is_down_in_time_and_its_lesson_moves(
    start_janus: StartJanus,
) -> None:
    a, b = await start_janus(), await start_janus()
    moved: asyncio.Queue[tuple[str, Replaced, float]] = asyncio.Queue()

    async def on_replaced(instance: str, replaced: Replaced) -> None:
        moved.put_nowait((instance, replaced, time.monotonic()))

    cfg = plane_config({"county-a": instance(a), "county-b": instance(b)})
    plane = MediaPlane(cfg, on_replaced)
    await plane.start()
    try:
        before = await plane.rooms.open("lesson-1")
        assert before.instance == "county-a"
        a.kill()
        killed = time.monotonic()
        instance_name, replaced, at = await asyncio.wait_for(moved.get(), 10)
        bound = cfg.watch.down_within_s
        assert instance_name == "county-a" and at - killed <= bound, (at - killed, bound)
        state = plane.watcher.state("county-a")
        assert not state.healthy and "unreachable" in state.error
        after = replaced["lesson-1"]
        assert not isinstance(after, MediaPlaneError)
        assert after.instance == "county-b" and after.api_url == b.url
        assert after.pin != before.pin and after.secret != before.secret
        assert after.reason.startswith("county-b: least loaded healthy instance (0 of 4 lessons)")
        assert "county-a down (janus instance 'county-a': admin_url" in after.reason
        assert plane.rooms.placement("lesson-1") == after
        assert await plane.rooms.exists("lesson-1")
        # The new placement is what agents will be told: its PIN admits them there.
        agent = JanusVideoRoom(after.api_url)
        await agent.start()
        try:
            assert await agent.join(after.room or 0, "lead classroom", pin=after.pin)
        finally:
            await agent.stop()
        # New lessons go to the live instance too.
        assert (await plane.rooms.open("lesson-2")).instance == "county-b"
    finally:
        await plane.stop()


async def test_an_instance_dead_at_lesson_start_is_passed_over(start_janus: StartJanus) -> None:
    a, b = await start_janus(), await start_janus()
    # A slow watcher: it still thinks county-a healthy when the lesson starts.
    cfg = plane_config(
        {"county-a": instance(a), "county-b": instance(b)}, poll_interval_s=60, request_timeout_s=1
    )
    plane = MediaPlane(cfg)
    await plane.start()
    try:
        a.kill()
        placed = await plane.rooms.open("lesson-1")
        assert placed.instance == "county-b"
        assert placed.reason.startswith("county-a failed (janus instance 'county-a': admin_url")
        assert "unreachable" in placed.reason
        # The failed request counted as a failed poll.
        assert plane.watcher.state("county-a").failures == 1
    finally:
        await plane.stop()


async def test_a_silent_instance_is_down_in_time_and_its_old_room_goes_when_it_returns(
    start_janus: StartJanus,
) -> None:
    a, b = await start_janus(), await start_janus()
    cfg = plane_config({"county-a": instance(a), "county-b": instance(b)})
    plane = MediaPlane(cfg)
    await plane.start()
    try:
        before = await plane.rooms.open("lesson-1")
        assert before.instance == "county-a"
        os.kill(a.pid, signal.SIGSTOP)  # alive but silent: every request times out
        stopped = time.monotonic()
        while plane.watcher.state("county-a").healthy:
            assert time.monotonic() - stopped <= cfg.watch.down_within_s + 0.5
            await asyncio.sleep(0.05)
        assert "did not answer within 0.5 s" in plane.watcher.state("county-a").error
        # The lesson is re-placed once the instance is declared down (a room created on
        # county-b), within a second more.
        while (after := plane.rooms.placement("lesson-1")) is None or after.instance != "county-b":
            assert time.monotonic() - stopped <= cfg.watch.down_within_s + 1.5, after
            await asyncio.sleep(0.05)

        # county-a answers again, still holding the old room: it is destroyed.
        os.kill(a.pid, signal.SIGCONT)
        for _ in range(100):
            await asyncio.sleep(0.1)
            state = plane.watcher.state("county-a")
            if state.healthy and before.room not in state.room_ids:
                break
        else:
            raise AssertionError(f"county-a's old room still there: {state}")
        old = {"request": "exists", "room": before.room}
        assert (await plane.clients["county-a"].videoroom(old))["exists"] is False
    finally:
        os.kill(a.pid, signal.SIGCONT)
        await plane.stop()


async def test_moving_a_lesson_off_a_live_instance_destroys_its_old_room(
    start_janus: StartJanus,
) -> None:
    a, b = await start_janus(), await start_janus()
    plane = MediaPlane(plane_config({"county-a": instance(a), "county-b": instance(b)}))
    await plane.start()
    try:
        before = await plane.rooms.open("lesson-1")
        after = await plane.rooms.replace("lesson-1")
        assert (before.instance, after.instance) == ("county-a", "county-b")
        assert "county-a not used (the lesson's room was there)" in after.reason
        assert plane.rooms.lessons_on("county-b") == ["lesson-1"]
        assert plane.rooms.lessons_on("county-a") == []
        old = {"request": "exists", "room": before.room}
        assert (await plane.clients["county-a"].videoroom(old))["exists"] is False
        with pytest.raises(MediaPlaneError, match="'lesson-9' has no placement"):
            await plane.rooms.replace("lesson-9")
    finally:
        await plane.stop()


async def test_asking_at_once_makes_one_room_and_a_close_waits_for_it(
    start_janus: StartJanus,
) -> None:
    janus = await start_janus()
    plane = MediaPlane(plane_config({"county-a": instance(janus)}))
    await plane.start()
    try:
        first, second = await asyncio.gather(
            plane.rooms.open("lesson-1"), plane.rooms.open("lesson-1")
        )
        assert first == second
        opened, _ = await asyncio.gather(
            plane.rooms.open("lesson-2"), plane.rooms.close("lesson-2")
        )
        assert plane.rooms.placement("lesson-2") is None
        await plane.watcher.poll_once()
        assert plane.watcher.state("county-a").room_ids == {first.room}
        assert opened.room != first.room
    finally:
        await plane.rooms.close("lesson-1")
        await plane.stop()
