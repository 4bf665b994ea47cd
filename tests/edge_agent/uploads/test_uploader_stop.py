"""Stopping the uploader right after a kick must not hang (agent stop at a lesson's end)."""

from __future__ import annotations

import asyncio
import pathlib

from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader


async def test_stop_right_after_a_kick_returns(tmp_path: pathlib.Path) -> None:
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    uploader = Uploader(journal, "c1", lambda: None)  # offline: nowhere to upload
    try:
        for _ in range(50):  # the race is timing-dependent: try it many times
            await uploader.start()
            await asyncio.sleep(0)
            uploader.kick()
            await asyncio.wait_for(uploader.stop(), 3.0)
    finally:
        journal.close()
