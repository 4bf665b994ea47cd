"""With several controllers only the leader plans and sends alert messages."""

from __future__ import annotations

import asyncio

from controller.notify.dispatcher import NotifyDispatcher


class _Counting(NotifyDispatcher):
    passes = 0

    async def run_once(self) -> int:
        self.passes += 1
        return 0


async def test_a_follower_sends_nothing_until_it_leads() -> None:
    leading = {"now": False}
    dispatcher = _Counting(None, interval_s=0.05, leads=lambda: leading["now"])  # type: ignore[arg-type]
    await dispatcher.start()
    try:
        dispatcher.poke()
        await asyncio.sleep(0.3)
        assert dispatcher.passes == 0  # another controller leads: it sends the outbox
        leading["now"] = True
        await asyncio.sleep(0.3)
        assert dispatcher.passes >= 2
    finally:
        await dispatcher.stop()
