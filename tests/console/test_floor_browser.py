"""The floor panel (课堂互动) in a real headless Chromium: the lesson's teacher calls on a
room, mutes another and releases the floor; the API agrees at each step."""

from __future__ import annotations

from typing import Any

import pytest
from console.floor_seed import floor_lesson
from console.harness import PASSWORD, Console, require_browser

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402


async def _floor(console: Console, lesson: str) -> Any:
    url = f"{console.base}/api/v1/lessons/{lesson}/floor"
    async with console.session(headers=console.bearer("admin")) as http, http.get(url) as r:
        assert r.status == 200
        return await r.json()


async def test_teacher_calls_on_a_room_mutes_and_releases(page: Page, console: Console) -> None:
    lesson = floor_lesson(console)
    await page.fill("#username", "teacher")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("#nav button[data-page='floor']")
    row = page.locator("#floor-rooms tr[data-classroom='village-202']")
    await expect(row).to_contain_text("Village School No. 2")
    await expect(row).to_contain_text("Village 202")
    now = page.locator("#floor-speaking")
    await expect(now).to_have_attribute("data-speaking", "")

    await row.locator("button.call-on").click()
    await expect(now).to_have_attribute("data-speaking", "village-202")
    await expect(now).to_contain_text("Village 202")
    await expect(row).to_have_class("speaking")
    doc = await _floor(console, lesson)
    assert (doc["seq"], doc["speaking"], doc["by"]) == (1, "village-202", "console:teacher")

    other = page.locator("#floor-rooms tr[data-classroom='village-201'] button.mute")
    await other.click()
    await expect(other).to_have_attribute("aria-pressed", "true")
    doc = await _floor(console, lesson)
    assert (doc["seq"], doc["muted"]) == (2, ["village-201"])

    await page.click("#floor-release")
    await expect(now).to_have_attribute("data-speaking", "")
    doc = await _floor(console, lesson)
    assert (doc["seq"], doc["speaking"], doc["muted"]) == (3, None, ["village-201"])

    # A change made elsewhere (the scheduler's console) shows within the 2 s refresh.
    url = f"{console.base}/api/v1/lessons/{lesson}/floor"
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.put(url, json={"speaking": "village-201", "muted": []}) as r,
    ):
        assert r.status == 200
    await expect(now).to_have_attribute("data-speaking", "village-201", timeout=5000)
    await expect(page.locator("#floor-error")).to_have_text("")
