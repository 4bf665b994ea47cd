"""The emergency switch page in a real headless Chromium: a scheduler holds a school's
lessons online only (after confirming), sees the switch holding with its lessons, and
switches back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser

from controller.db.models import Lesson
from controller.lessons.scheduling import schedule_lesson

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

require_browser()
from playwright.async_api import Page, expect  # noqa: E402


async def test_a_scheduler_switches_a_school_online_and_back(page: Page, console: Console) -> None:
    start = datetime.now(UTC) + timedelta(hours=2)
    with console.db() as s:
        lesson = schedule_lesson(
            s, "city-101", ["village-201"], start, start + timedelta(minutes=40)
        )
    await page.fill("#username", "scheduler")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("#nav [data-page='emergency']")
    await page.wait_for_selector("body[data-ready='1'] #emergency-form")
    await expect(page.locator("main")).to_contain_text("没有生效中的应急切换")

    await page.select_option("#emergency-school", "Village School")
    await page.fill("#emergency-reason", "大雪停课")
    page.once("dialog", lambda d: d.accept())
    await page.click("#emergency-go")
    row = page.locator("#emergency-switches tbody tr[data-active='1']")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Village School")
    await expect(row).to_contain_text("console:scheduler")
    with console.db() as s:
        assert s.get(Lesson, lesson.id).one_way is True  # type: ignore[union-attr]

    await row.locator(".emergency-back").click()
    await expect(page.locator("#emergency-switches tbody tr[data-active='0']")).to_have_count(1)
    await expect(page.locator("#emergency-error")).to_have_text("")
    with console.db() as s:
        assert s.get(Lesson, lesson.id).one_way is False  # type: ignore[union-attr]
