"""Lesson review (评课) beside a recording, in a real headless Chromium: an inspector pauses
the player, pins a note to that moment and scores the lesson; the note seeks the player;
a scheduler sees the review but no forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser
from console.recording_seed import seed_lesson, seed_recording

from controller.app.daemon import ControllerConfig
from controller.db.models import Lesson, LessonNote, LessonScore

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def _open_recording(page: Page, user: str, lesson: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("nav button[data-page='recordings']")
    await page.wait_for_selector("body[data-ready='1'] #recordings #rec-count")
    await page.locator(f"#rec-results tr[data-lesson='{lesson}'] .rec-play").click()
    await page.wait_for_selector("#rec-player[data-ready='1'] #rev-panel[data-ready='1']")


async def test_an_inspector_notes_a_moment_and_scores_the_lesson(
    page: Page, console: Console, controller_config: ControllerConfig
) -> None:
    lesson = seed_lesson(
        console.db, "city-101", ["village-201"], T0, T0 + timedelta(seconds=6), subject="math"
    )
    seed_recording(console.db, controller_config.storage_dir, lesson, "city-101")
    with console.db() as s:  # recorded (the orchestrator sees another engine's rows late)
        row = s.get(Lesson, lesson)
        assert row is not None
        row.state = "uploaded"
        s.commit()
    await _open_recording(page, "inspector", lesson)
    await page.wait_for_function(
        "() => { const v = document.querySelector('#rec-video');"
        " return v.readyState >= 2 && v.currentTime > 1; }",
        timeout=10_000,
    )
    await page.evaluate(
        "(() => { const v = document.querySelector('#rec-video');"
        " v.pause(); v.currentTime = 3.2; })()"
    )
    await page.fill("#rev-text", "学生上台板书，两端互动好")
    await page.click("#rev-add")
    note = page.locator("#rev-notes li")
    await expect(page.locator("#rev-message")).to_have_text("")
    await expect(note).to_have_count(1)
    await expect(note).to_contain_text("0:03")
    await expect(note).to_contain_text("学生上台板书")
    # And on the recording's timeline: a tick at 3.2 s of the 6 s lesson.
    tick = page.locator("#rec-bar rect.note")
    await expect(tick).to_have_count(1)
    assert 3.0 <= float(await tick.get_attribute("data-at") or 0) <= 3.4
    for criterion, points in (("goals", 18), ("delivery", 27), ("interaction", 25), ("media", 20)):
        await page.fill(f"#rev-score-{criterion}", str(points))
    await page.fill("#rev-comment", "优秀")
    await page.click("#rev-save")
    await expect(page.locator("#rev-mean")).to_contain_text("90")
    # A note's time seeks the player there.
    await page.evaluate("document.querySelector('#rec-video').currentTime = 0.5")
    await note.locator("button.rev-at").click()
    moved = await page.wait_for_function(
        "() => { const v = document.querySelector('#rec-video');"
        " return !v.seeking && v.currentTime > 3 ? v.currentTime : false; }"
    )
    assert 3.0 < await moved.json_value() < 3.5
    with console.db() as s:
        [row] = s.query(LessonNote).filter_by(lesson_id=lesson).all()
        assert row.author == "inspector" and 3.0 <= row.at_s <= 3.4
        [score] = s.query(LessonScore).filter_by(lesson_id=lesson).all()
        assert (score.total, score.comment) == (90, "优秀")

    # A bad score is refused with the field named, and nothing changes.
    await page.fill("#rev-score-media", "21")
    await page.click("#rev-save")
    await expect(page.locator("#rev-message")).to_contain_text("scores.media")

    await page.click("#sign-out")
    await page.wait_for_selector("#sign-in:not([hidden])")
    await _open_recording(page, "scheduler", lesson)
    await expect(page.locator("#rev-notes li")).to_have_count(1)
    assert await page.locator("#rev-add").count() == 0
    assert await page.locator("#rev-save").count() == 0
