"""The resource library in a real headless Chromium: a scheduler cuts a clip from a
recording with its metadata; an inspector finds it in the review queue, approves it, and
downloads its package from the library page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser
from console.recording_seed import seed_lesson, seed_recording
from sqlalchemy import select

from controller.app.daemon import ControllerConfig
from controller.db.models import Lesson

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page  # noqa: E402

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def _sign_in(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")


async def test_a_scheduler_cuts_a_clip_an_inspector_approves_and_exports_it(
    page: Page, console: Console, controller_config: ControllerConfig
) -> None:
    lesson = seed_lesson(
        console.db,
        "city-101",
        ["village-201"],
        T0,
        T0 + timedelta(seconds=6),
        subject="math",
        teacher="t-wang",
        title="Fractions",
    )
    seed_recording(console.db, controller_config.storage_dir, lesson, "city-101")

    await _sign_in(page, "scheduler")
    await page.click("nav button[data-page='recordings']")
    row = page.locator(f"body[data-ready='1'] #rec-results tr[data-lesson='{lesson}']")
    await row.locator(".rec-clip").click()
    form = row.locator(".lib-clip-form")
    await form.locator("input[name='start_s']").fill("3.2")
    await form.locator("input[name='end_s']").fill("5")
    await form.locator("input[name='title']").fill("找一找分数")
    await form.locator("input[name='grade']").fill("三年级")
    await form.locator(".lib-send").click()
    await form.locator(".lib-message:not(.error):has-text('#')").wait_for()
    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in:not([hidden])")

    await _sign_in(page, "inspector")
    await page.click("nav button[data-page='library']")
    await page.wait_for_selector("body[data-ready='1'] #library #lib-count")
    await page.select_option("#lib-status", "pending")
    pending = page.locator("body[data-ready='1'] #lib-items tr[data-status='pending']")
    assert "找一找分数" in await pending.inner_text()
    await pending.locator(".lib-approve").click()
    await page.wait_for_selector("body[data-ready='1'] #lib-count")
    await page.select_option("#lib-status", "approved")
    approved = page.locator("body[data-ready='1'] #lib-items tr[data-status='approved']")
    href = await approved.locator(".lib-package").get_attribute("href")
    assert href is not None and href.endswith("/package")
    got = await page.evaluate(
        "async (u) => { const r = await fetch(u);"
        " return [r.status, r.headers.get('content-type')]; }",
        href,
    )
    assert got == [200, "application/zip"]

    # A scheduler sets the village room to play it in class (专递课堂 on demand).
    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in:not([hidden])")
    await _sign_in(page, "scheduler")
    await page.click("nav button[data-page='library']")
    approved = page.locator("body[data-ready='1'] #lib-items tr[data-status='approved']")
    form = approved.locator(".lib-delivery")
    await form.locator(".lib-delivery-room").fill("village-201")
    await form.locator(".lib-delivery-start").fill("2099-09-01T08:00")
    await form.locator(".lib-delivery-go").click()
    await page.wait_for_selector("#library p.error:has-text('village-201')")
    with console.db() as s:
        played = s.scalars(select(Lesson).where(Lesson.kind == "delivery")).all()
    assert [x.lead_classroom_id for x in played] == ["village-201"]
