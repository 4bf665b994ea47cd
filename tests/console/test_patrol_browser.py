"""Patrol in a real Chromium: an inspector watches a live lesson of two real synthetic
agents over WebRTC through the controller's relay, and the browser decodes its video."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from benchlib.console_browser import (
    CHROMIUM,
    add_console_user,
    first_frame_ms,
    frames_decoded,
    open_nav_page,
    rig_chromium_args,
    sign_in,
)
from benchlib.rig import LessonRig
from console.harness import PASSWORD, require_browser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

require_browser()
from playwright.async_api import async_playwright  # noqa: E402

LEAD, RECEIVER = "city-1-101", "village-1-201"


@pytest.fixture
def live(tmp_path: pathlib.Path) -> Iterator[tuple[LessonRig, str]]:
    """A controller, two synthetic agents, an inspector account and a live lesson whose
    lead camera already reaches the relay."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=2.0)
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        add_console_user(rig, "inspector", "inspector", PASSWORD)
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        lesson = rig.schedule(LEAD, [RECEIVER], 1.0, 120.0)

        def lead_camera_flows() -> Any:
            for x in rig.get("/live"):
                if x["id"] == lesson["id"]:
                    return any(
                        f["classroom"] == LEAD and f["kind"] == "video" and f["frames_in"] > 0
                        for f in x["feeds"]
                    )
            return False

        rig.wait("the lead camera in /api/v1/live", lead_camera_flows, 30)
        yield rig, lesson["id"]
    finally:
        rig.stop()


async def test_inspector_watches_a_live_lesson_and_the_browser_decodes_it(
    live: tuple[LessonRig, str],
) -> None:
    rig, lesson_id = live
    base = rig.base
    doc = next(x for x in rig.get("/live") if x["id"] == lesson_id)
    assert doc["lead"] == LEAD and doc["receivers"] == [RECEIVER]
    assert {(f["classroom"], f["track"]) for f in doc["feeds"]} >= {
        (LEAD, "teacher"),
        (LEAD, "mic"),
        (RECEIVER, "student"),
    }
    assert "media_latency_ms" in doc["unavailable"]  # said, not invented
    teacher = next(f for f in doc["feeds"] if f["track"] == "teacher")
    assert "loss_pct" in teacher and "rtt_ms" in teacher  # from the agents' RTCP stats
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=rig_chromium_args(rig)
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await sign_in(page, base, "inspector", PASSWORD)
            await open_nav_page(page, "patrol")
            await page.locator(".patrol-tile video").first.wait_for()
            await first_frame_ms(page, lesson_id, timeout_s=10)
            before = await frames_decoded(page)
            await asyncio.sleep(2.0)
            after = await frames_decoded(page)
            # The relay forwards the agents' H.264 untouched; Chromium must decode it.
            assert before["codec"] == "video/H264", before
            assert after["frames"] - before["frames"] >= 20, (before, after)
            assert await page.locator("#patrol-main").evaluate("v => v.videoWidth") > 0
            # The receiving room's camera is beside the lead.
            assert await page.locator("#patrol-view .side video").count() >= 1
            # Reviewing while watching (评课): a note is pinned to the lesson's clock now.
            await page.wait_for_selector("#patrol-view #rev-panel[data-ready='1']")
            await page.fill("#rev-text", "板书清楚")
            await page.click("#rev-add")
            await page.locator("#rev-notes li", has_text="板书清楚").wait_for()
        finally:
            await browser.close()
    # The viewers (thumbnail and big view) are on the relay; watching was audited.
    doc = next(x for x in rig.get("/live") if x["id"] == lesson_id)
    assert doc["viewers"] >= 1
    audit = rig.get("/audit?limit=50")
    assert any(r["action"] == "watch" and r["username"] == "inspector" for r in audit), audit
    review = rig.get(f"/lessons/{lesson_id}/review")
    [note] = review["notes"]
    started = datetime.fromisoformat(review["start_at"])
    assert note["author"] == "inspector" and note["text"] == "板书清楚"
    assert 0 <= note["at_s"] <= (datetime.now(UTC) - started).total_seconds() + 1, note
