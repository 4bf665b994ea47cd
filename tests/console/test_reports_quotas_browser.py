"""The reports page's quota views in a real headless Chromium: an inspector picks a term
and a view; schools come ranked, quota labels read in Chinese with the English beside
(no English-only label in the Chinese console), and the CSV link is the view's."""

from __future__ import annotations

from datetime import date

import pytest
from console.harness import PASSWORD, Console, require_browser
from quota_seed import lesson

from controller.timetable.setup import apply_setup

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page  # noqa: E402

SETUP = """
[[school]]
id = "City School"

[[school]]
id = "Village School"

[[term]]
id = "2026-spring"
start = 2026-03-02
end = 2026-03-29

[[pairing]]
id = "p-city-village"
supporting = "City School"
supported = ["Village School"]
forms = ["synchronous", "research"]
start = 2026-03-01
end = 2026-07-31
"""


async def test_quota_views_rank_schools_in_chinese_with_english_beside(
    page: Page, console: Console
) -> None:
    with console.db() as s:
        apply_setup(s, SETUP)
        lesson(s, date(2026, 3, 4), lead="city-101", receivers=("village-201",))
    await page.fill("#username", "inspector")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.evaluate("localStorage.setItem('classbridge.lang', 'zh')")
    await page.click("nav button[data-page='reports']")
    await page.wait_for_selector("body[data-ready='1'] #reports #rp-results")
    await page.select_option("#rp-view", "school")
    await page.fill("#rp-term", "2026-spring")
    await page.click("#rp-show")
    city = page.locator("body[data-ready='1'] .rp-entry[data-key='City School']")
    await city.wait_for()
    assert "第 1 名 (未设学段)" in await city.locator("h3").inner_text()
    assert "学校按学段分组排名" in await page.locator("#rp-results").inner_text()
    labels = await city.locator("table.rp-quotas tbody tr td:first-child").all_inner_texts()
    assert "跨校同步课堂 (cross-school synchronous lessons)" in labels
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in label) for label in labels), labels
    kinds = await city.locator("h4 + table tbody td:first-child").all_inner_texts()
    assert kinds == ["同步课堂"]
    href = await page.get_attribute("#rp-csv", "href")
    assert href == "/api/v1/reports/quotas?term=2026-spring&by=school&format=csv"
    raw = await page.evaluate(
        "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())).slice(0, 3)",
        href,
    )
    assert raw == [0xEF, 0xBB, 0xBF]  # a BOM: Excel on a Chinese PC reads it as UTF-8

    await page.select_option("#rp-view", "pairing")
    await page.click("#rp-show")
    pairing = page.locator("body[data-ready='1'] .rp-entry[data-key='p-city-village']")
    await pairing.wait_for()
    bars = pairing.locator("svg.rp-chart g.rp-bar text:first-child")
    chinese = await bars.locator("tspan:first-child").all_text_contents()
    english = await bars.locator("tspan.en").all_text_contents()
    assert chinese[0] == "同步课堂总数" and english[0] == "(synchronous lessons held)"
    assert len(chinese) == len(english) == await bars.count() == 3
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in label) for label in chinese), chinese
    assert await page.inner_text("#reports h2") == "学期考核指标报表"
