"""A kick wakes the waiting uploader promptly, from the loop or from another thread.

A segment closes on the recorder's thread, and its kick must not wait for the
uploader's next timeout (up to 30 s) to be seen.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading

from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader


async def _waiting_uploader(
    tmp_path: pathlib.Path,
) -> tuple[Uploader, UploadJournal, asyncio.Future[None]]:
    """An uploader with an empty journal, asleep in its 30 s wait; the future resolves
    when it looks at the journal again."""
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    loop = asyncio.get_running_loop()
    looks = [loop.create_future(), loop.create_future()]  # first look, second look

    def credentials() -> tuple[str, str]:
        done = next((f for f in looks if not f.done()), None)
        if done is not None:
            done.set_result(None)
        return ("http://127.0.0.1:9/upload", "token")  # empty journal: never used

    uploader = Uploader(journal, "c1", credentials)
    await uploader.start()
    await asyncio.wait_for(looks[0], 2.0)
    await asyncio.sleep(0.05)  # into the wait
    assert not looks[1].done()
    return uploader, journal, looks[1]


async def test_a_kick_from_another_thread_wakes_the_uploader(tmp_path: pathlib.Path) -> None:
    uploader, journal, woken = await _waiting_uploader(tmp_path)
    try:
        # Nothing else may wake the loop meanwhile, so the thread does not report back
        # through the loop (as asyncio.to_thread would).
        kicker = threading.Timer(0.05, uploader.kick)
        kicker.start()
        await asyncio.wait_for(woken, 2.0)
        kicker.join()
    finally:
        await uploader.stop()
        journal.close()


async def test_a_kick_on_the_loop_wakes_the_uploader(tmp_path: pathlib.Path) -> None:
    uploader, journal, woken = await _waiting_uploader(tmp_path)
    try:
        uploader.kick()
        await asyncio.wait_for(woken, 2.0)
    finally:
        await uploader.stop()
        journal.close()


async def test_a_kick_before_start_is_kept(tmp_path: pathlib.Path) -> None:
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    uploader = Uploader(journal, "c1", lambda: None)
    try:
        uploader.kick(now=True)  # the daemon enqueues old recordings before start
        await uploader.start()
    finally:
        await uploader.stop()
        journal.close()
