"""The reports page's quota editor and report archive in a real headless Chromium: a
scheduler reads the term's quotas (Chinese and English labels), sees a refusal beside the
quota it names, changes a threshold, removes one, adds one and saves; then writes a month's
report now, downloads its CSV (with a BOM) and prints its HTML to PDF in the browser."""

from __future__ import annotations

from datetime import date

import pytest
from console.harness import PASSWORD, Console, require_browser
from quota_seed import lesson

from controller.db.models import Term
from controller.timetable.quotas import DEFAULT_QUOTAS
from controller.timetable.setup import apply_setup

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page  # noqa: E402

SETUP = """
[[school]]
id = "City School"

[[term]]
id = "2026-spring"
start = 2026-03-02
end = 2026-04-10
"""


async def test_edit_quotas_then_write_download_and_print_a_report(
    page: Page, console: Console
) -> None:
    with console.db() as s:
        apply_setup(s, SETUP)
        lesson(s, date(2026, 3, 4), lead="city-101", receivers=("village-201",))
    await page.evaluate("localStorage.setItem('classbridge.lang', 'zh')")
    await page.fill("#username", "scheduler")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("nav button[data-page='reports']")
    await page.wait_for_selector("body[data-ready='1'] #reports")
    await page.fill("#rp-term", "2026-spring")
    await page.click("#rp-quotas-edit")
    rows = page.locator("#qe tr.qe-row")
    await rows.first.wait_for()
    assert "默认" in await page.inner_text("#qe-source")
    assert await rows.count() == len(DEFAULT_QUOTAS)
    first = rows.nth(0)
    assert await first.locator(".qe-label-zh").input_value() == "同步课堂总数"
    assert await first.locator(".qe-label-en").input_value() == "synchronous lessons held"
    assert "同步课堂 (synchronous)" in await first.locator(".qe-kind option:checked").inner_text()

    await first.locator(".qe-min").fill("0")
    await page.click("#qe-save")
    problem = first.locator(".qe-error")
    await problem.wait_for()
    assert "field 'min'" in await problem.inner_text()
    assert await first.locator(".qe-min.qe-bad").count() == 1
    assert await rows.nth(1).locator(".qe-error").inner_text() == ""

    await first.locator(".qe-min").fill("25")
    await rows.nth(1).locator(".qe-remove").click()
    await page.click("#qe-add")
    fresh = rows.last
    await fresh.locator(".qe-id").fill("teacher-weekly")
    await fresh.locator(".qe-label-zh").fill("教师每周授课")
    await fresh.locator(".qe-label-en").fill("lessons a teacher gives a week")
    await fresh.locator(".qe-period").select_option("week")
    await fresh.locator(".qe-scope").select_option("teacher")
    await page.click("#qe-save")
    await page.wait_for_selector("#qe-message.ok")
    assert await page.inner_text("#qe-source") == "本学期自定义的指标"
    with console.db() as s:
        term = s.get(Term, "2026-spring")
        assert term is not None and term.quotas is not None
        ids = [q["id"] for q in term.quotas]
        assert term.quotas[0]["min"] == 25
    assert len(ids) == len(DEFAULT_QUOTAS) and "sync-subjects" not in ids
    assert ids[-1] == "teacher-weekly"

    await page.click("#rp-archive")
    await page.wait_for_selector("#ra-form")
    await page.fill("#ra-period", "2026-03")
    await page.click("#ra-run")
    row = page.locator("#ra-table tr[data-period='2026-03']")
    await row.wait_for()
    assert "2026-03 月报" in await row.inner_text()
    csv = await row.locator("a[data-file='school.csv']").get_attribute("href")
    raw = await page.evaluate(
        "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))"
        ".slice(0, 11)",
        csv,
    )
    assert bytes(raw) == b"\xef\xbb\xbf" + "学校 s".encode()
    html = await row.locator("a[data-file='report.html']").get_attribute("href")
    assert html is not None
    await page.goto(console.base + html)
    assert "月度报表 monthly report 2026-03" in await page.inner_text("h1")
    assert await page.locator("svg").count() == 2  # lessons by kind, schools ranked
    assert "同步课堂 synchronous" in await page.inner_text("table")
    pdf = await page.pdf(format="A4")  # what the browser's "save as PDF" makes
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
