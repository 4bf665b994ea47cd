"""The recordings and reports pages in a real headless Chromium: an inspector finds a
recording, plays it (the session cookie authenticates the media requests), seeks with the
coverage bar, and may not publish; a scheduler asks to publish it to the resource library
(pending review). The term report charts each pairing against its quotas, links its CSV
and prints."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser
from console.recording_seed import GAP_DETAIL, seed_lesson, seed_recording
from sqlalchemy import select

from controller.app.daemon import ControllerConfig
from controller.db.models import LibraryItem, Pairing, PublishedRecording

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page  # noqa: E402

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def _sign_in(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")


async def _open_recordings(page: Page) -> None:
    await page.click("nav button[data-page='recordings']")
    await page.wait_for_selector("body[data-ready='1'] #recordings #rec-count")


async def test_inspector_finds_plays_and_seeks_a_scheduler_publishes(
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
    other = seed_lesson(
        console.db,
        "village-201",
        ["city-101"],
        T0 + timedelta(hours=3),
        T0 + timedelta(hours=3, seconds=6),
        subject="chinese",
    )
    url = seed_recording(console.db, controller_config.storage_dir, lesson, "city-101")
    seed_recording(console.db, controller_config.storage_dir, other, "village-201")

    await _sign_in(page, "inspector")
    await _open_recordings(page)
    assert await page.get_attribute("#rec-count", "data-total") == "2"
    await page.select_option("#rec-school", "City School")
    await page.fill("#rec-subject", "math")
    await page.click("#rec-search")
    await page.wait_for_selector("body[data-ready='1'] #rec-count[data-total='1']")
    row = page.locator(f"#rec-results tr[data-lesson='{lesson}']")
    assert await row.count() == 1
    assert "83.3%" in await row.inner_text()
    assert await row.locator(".rec-publish").count() == 0  # an inspector cannot publish
    assert await row.locator("a.rec-download").get_attribute("href") == url

    await row.locator(".rec-play").click()
    await page.wait_for_selector("#rec-player[data-ready='1'] #rec-bar")
    await page.wait_for_function(
        "() => { const v = document.querySelector('#rec-video');"
        " return v.readyState >= 2 && v.currentTime > 1; }",
        timeout=10_000,
    )
    gap = page.locator("#rec-bar rect.gap")
    assert await gap.count() == 1
    assert await gap.get_attribute("data-reason") == "source_lost"
    assert GAP_DETAIL in (await gap.locator("title").text_content() or "")

    # Seek: a click at three quarters of the bar is 4.5 s into the 6 s lesson.
    await page.evaluate("document.querySelector('#rec-video').pause()")
    bar = page.locator("#rec-bar")
    await bar.scroll_into_view_if_needed()
    box = await bar.bounding_box()
    assert box is not None
    await bar.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    jumped = await page.wait_for_function(
        "() => { const v = document.querySelector('#rec-video');"
        " return !v.seeking && v.currentTime > 4 ? v.currentTime : false; }"
    )
    assert 4.0 < await jumped.json_value() < 5.0

    # The API refuses the inspector's publish, even from the signed-in browser.
    status = await page.evaluate(
        """async (path) => {
            const s = await (await fetch('/api/v1/session')).json();
            const r = await fetch(path, {method: 'POST', headers: {'X-CSRF-Token': s.csrf}});
            return r.status;
        }""",
        f"/api/v1/recordings/{lesson}/city-101/teacher/publish",
    )
    assert status == 403

    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in:not([hidden])")
    await _sign_in(page, "scheduler")
    await _open_recordings(page)
    row = page.locator(f"#rec-results tr[data-lesson='{lesson}']")
    await row.locator(".rec-publish").click()
    # The form carries the lesson's metadata; the request waits for a reviewer.
    assert await row.locator(".lib-publish-form input[name='title']").input_value() == "Fractions"
    await row.locator(".lib-publish-form .lib-send").click()
    await row.locator(".rec-published:not(:has(button))").wait_for()
    with console.db() as s:
        [asked] = s.scalars(select(LibraryItem).where(LibraryItem.lesson_id == lesson)).all()
        assert asked.status == "pending" and asked.requested_by == "scheduler"
        assert s.get(PublishedRecording, (lesson, "city-101", "teacher")) is None


async def test_reports_page_charts_quotas_links_csv_and_prints(
    page: Page, console: Console
) -> None:
    with console.db() as s:
        s.add(
            Pairing(
                id="p-city-village",
                name="City with Village",
                supporting_school_id="City School",
                supported_school_ids=["Village School"],
                forms=["delivery"],
                start_date=date(2026, 2, 1),
                end_date=date(2026, 7, 15),
            )
        )
        s.commit()
    await _sign_in(page, "inspector")
    await page.evaluate("window.print = () => { document.body.dataset.printed = '1'; }")
    await page.click("nav button[data-page='reports']")
    await page.wait_for_selector("body[data-ready='1'] #reports #rp-results")
    await page.fill("#rp-from", "2026-02-01")
    await page.fill("#rp-to", "2026-07-15")
    await page.click("#rp-show")
    section = page.locator("body[data-ready='1'] .rp-pairing[data-pairing='p-city-village']")
    await section.wait_for()
    assert await section.get_attribute("data-met") == "0"
    bars = section.locator("svg.rp-chart g.rp-bar")
    assert await bars.count() >= 3
    assert await section.locator("svg.rp-chart g.rp-bar.short rect.required").count() >= 3
    href = await page.get_attribute("#rp-csv", "href")
    assert href == "/api/v1/reports/pairings?from=2026-02-01&to=2026-07-15&format=csv"
    csv = await page.evaluate("async (u) => (await fetch(u)).text()", href)
    assert "p-city-village" in csv
    await page.click("#rp-print")
    await page.wait_for_selector("body[data-printed='1']")
    await page.emulate_media(media="print")
    assert not await page.locator("#nav").is_visible()
    assert not await page.locator("#rp-form").is_visible()
    assert await section.is_visible()
