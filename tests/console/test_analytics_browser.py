"""Lesson analytics (S-T) beside a recording, in a real headless Chromium: the S-T curve,
the Rt–Ch chart with the lesson's point, and each receiving room's turns, from the
timelines the lesson's rooms sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser
from console.recording_seed import seed_lesson, seed_recording

from controller.analytics.store import store_talk
from controller.app.daemon import ControllerConfig
from controller.db.models import Lesson
from controller.db.session import as_utc
from protocols.messages import TalkTimeline

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402

T0 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)


async def test_the_st_curve_and_rt_ch_chart_show_beside_the_recording(
    page: Page, console: Console, controller_config: ControllerConfig
) -> None:
    # A 10-minute lesson: question and answer by turns (a dialogue), then a talk.
    lesson = seed_lesson(console.db, "city-101", ["village-201"], T0, T0 + timedelta(minutes=10))
    seed_recording(console.db, controller_config.storage_dir, lesson, "city-101")
    lead = ("T" * 30 + "." * 30) * 6 + "T" * 240
    answers = ("." * 30 + "S" * 30) * 6 + "." * 240
    with console.db() as s:
        row = s.get(Lesson, lesson)
        assert row is not None
        row.state = "uploaded"
        start = as_utc(row.start_at).timestamp()
        store_talk(s, row, "city-101", TalkTimeline(start=start, codes=lead))
        store_talk(s, row, "village-201", TalkTimeline(start=start, codes=answers))
        s.commit()
    await page.fill("#username", "scheduler")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("nav button[data-page='recordings']")
    await page.wait_for_selector("body[data-ready='1'] #recordings #rec-count")
    await page.locator(f"#rec-results tr[data-lesson='{lesson}'] .rec-play").click()
    await page.wait_for_selector("#rec-player[data-ready='1'] #st-panel[data-ready='1']")
    # 20 samples: TS six times, then eight T → Rt 0.7 (讲授型 at the boundary), Ch 12/20.
    summary = page.locator("#st-summary")
    await expect(summary).to_have_attribute("data-type", "lecture")
    await expect(summary).to_contain_text("Rt 0.70")
    await expect(summary).to_contain_text("讲授型")
    curve = page.locator("#st-panel polyline.st-curve")
    await expect(curve).to_have_attribute("data-t", "14")
    await expect(curve).to_have_attribute("data-s", "6")
    point = page.locator("#st-panel circle.st-point")
    await expect(point).to_have_attribute("data-rt", "0.7")
    await expect(point).to_have_attribute("data-ch", "0.6")
    room = page.locator("#st-rooms li[data-classroom='village-201']")
    await expect(room).to_contain_text("6")
    await expect(room).to_contain_text("3:00")
