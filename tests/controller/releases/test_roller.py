"""The rollout loop steps only on the controller that leads (several controllers)."""

from __future__ import annotations

import asyncio
import pathlib

from controller.db.session import make_engine, migrate, sessions
from controller.releases.roller import Roller


async def test_only_the_leader_steps_the_rollout(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    leading = {"now": False}
    roller = Roller(factory, lambda: [], tick_s=0.05, leads=lambda: leading["now"])
    await roller.start()
    try:
        await asyncio.sleep(0.3)
        assert roller.steps == 0 and roller.failures == 0  # another controller leads
        leading["now"] = True  # this one takes over
        await asyncio.sleep(0.3)
        assert roller.steps >= 2 and roller.failures == 0
    finally:
        await roller.stop()
