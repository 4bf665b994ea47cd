"""The timetable week view in a real headless Chromium: a scheduler sees a conflict before
saving, then creates a lesson that appears in the week; an inspector gets no create
controls."""

from __future__ import annotations

import pathlib
from datetime import datetime, timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser

from controller.live_push.store import push_targets

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402


def _next_tuesday() -> datetime:
    """Tuesday of next week, local midnight (the calendar shows weeks from Monday)."""
    today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
    return monday + timedelta(days=1)


async def _seed_lesson(console: Console, start: datetime) -> str:
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.post(
            f"{console.base}/api/v1/lessons",
            json={
                "lead": "city-101",
                "receivers": ["village-201"],
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=40)).isoformat(),
                "subject": "math",
            },
        ) as r,
    ):
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])


async def _open_timetable_next_week(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("#nav [data-page='timetable']")
    await page.wait_for_selector("body[data-ready='1'] #timetable .fc-timegrid")
    async with page.expect_response(lambda r: "/api/v1/timetable?" in r.url):
        await page.click(".fc-next-button")


async def _select_slot(page: Page, day: datetime, start: str, end: str) -> None:
    """Drag over the time grid of ``day`` from ``start`` to the slot before ``end``."""
    column = await page.locator(f"td.fc-timegrid-col[data-date='{day:%Y-%m-%d}']").bounding_box()
    first = await page.locator(f"td.fc-timegrid-slot-lane[data-time='{start}:00']").bounding_box()
    last = await page.locator(f"td.fc-timegrid-slot-lane[data-time='{end}:00']").bounding_box()
    assert column and first and last
    x = column["x"] + column["width"] / 2
    await page.mouse.move(x, first["y"] + 3)
    await page.mouse.down()
    await page.mouse.move(x, last["y"] + 3, steps=5)
    await page.mouse.up()


async def test_scheduler_sees_the_conflict_before_saving_then_creates_a_lesson(
    page: Page, console: Console
) -> None:
    tuesday = _next_tuesday()
    lesson_id = await _seed_lesson(console, tuesday.replace(hour=10))
    await _open_timetable_next_week(page, "scheduler")
    await expect(page.locator(f"[data-lesson='{lesson_id}']").first).to_be_visible()

    # 09:30–10:30 overlaps the seeded lesson: the dialog names the conflict before saving.
    await _select_slot(page, tuesday, "09:30", "10:00")
    dialog = page.locator("#tt-dialog[data-mode='create']")
    await expect(dialog).to_be_visible()
    await dialog.locator("#tt-recv-village-201").check()
    problems = dialog.locator("#tt-problems li[data-code='conflict']")
    await expect(problems.first).to_contain_text("city-101")
    await expect(problems.first).to_contain_text("already booked")
    await expect(dialog.locator("#tt-save")).to_be_disabled()
    await dialog.locator("#tt-close").click()
    await expect(dialog).to_have_count(0)

    # A free slot: no problem, the placement is shown, and the lesson appears in the week.
    await _select_slot(page, tuesday, "14:00", "14:00")
    dialog = page.locator("#tt-dialog[data-mode='create']")
    await dialog.locator("#tt-recv-village-201").check()
    await dialog.locator("#tt-subject").fill("physics")
    await expect(dialog.locator("#tt-check")).to_contain_text("没有冲突")
    await expect(dialog.locator("#tt-placement")).to_be_visible()
    await expect(dialog.locator("#tt-save")).to_be_enabled()
    await dialog.locator("#tt-save").click()
    await expect(dialog).to_have_count(0)
    await expect(page.locator(".fc-event", has_text="physics")).to_be_visible()
    await expect(page.locator(".fc-event")).to_have_count(2)


async def test_inspector_sees_the_week_read_only(page: Page, console: Console) -> None:
    tuesday = _next_tuesday()
    lesson_id = await _seed_lesson(console, tuesday.replace(hour=9))
    await _open_timetable_next_week(page, "inspector")
    await expect(page.locator("#timetable")).to_have_attribute("data-editable", "0")
    await expect(page.locator(".readonly-note")).to_be_visible()
    await expect(page.locator(f"[data-lesson='{lesson_id}']").first).to_be_visible()
    await _select_slot(page, tuesday, "14:00", "14:00")
    await expect(page.locator("#tt-dialog[data-mode='create']")).to_have_count(0)
    await page.locator(f"[data-lesson='{lesson_id}']").first.click()
    details = page.locator("#tt-dialog[data-mode='details']")
    await expect(details).to_be_visible()
    await expect(details.locator("#tt-cancel-lesson")).to_have_count(0)
    await expect(details.locator("#tt-save")).to_have_count(0)
    await expect(page.locator("#tt-commit")).to_have_count(0)


async def test_scheduler_previews_a_gbk_csv_and_a_workbook_as_excel_saved_them(
    page: Page, console: Console, tmp_path: pathlib.Path
) -> None:
    """The import preview reads the file's own bytes: a GBK "CSV" from Excel on a Chinese
    PC and an .xlsx workbook both preview clean, with their Chinese intact."""
    import io

    from openpyxl import Workbook
    from timetable_fixtures import SETUP

    from controller.timetable.setup import apply_setup

    with console.db() as s:
        apply_setup(s, SETUP)
    header = ["日期", "开始", "结束", "类型", "主讲教室", "接收教室", "教师", "学科", "课题"]
    row = ["2026-03-04", "14:00", "14:40", "同步课堂", "city-101", "village-201", "t-wang"]
    gbk = tmp_path / "课表.csv"
    gbk.write_bytes(
        (",".join(header) + "\r\n" + ",".join([*row, "音乐", "《春晓》"]) + "\r\n").encode("gbk")
    )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    sheet.append(["2026-03-05", "14:00", "14:40", *row[3:], "美术", "水彩"])
    xlsx = tmp_path / "课表.xlsx"
    buffer = io.BytesIO()
    book.save(buffer)
    xlsx.write_bytes(buffer.getvalue())

    await page.fill("#username", "scheduler")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")
    await page.click("#nav [data-page='timetable']")
    await page.wait_for_selector("body[data-ready='1'] #tt-import")
    await page.fill("#tt-term", "spring")
    result = page.locator("#tt-import-result")
    for upload in (gbk, xlsx):
        await page.set_input_files("#tt-file", str(upload))
        async with page.expect_response(lambda r: "/api/v1/timetable/import" in r.url):
            await page.click("#tt-preview")
        await expect(result).to_contain_text("共 1 行，1 行可导入，0 个问题")
        # The preview shows what will be created, Chinese intact.
        made = page.locator("#tt-preview-lessons tbody tr")
        await expect(made).to_have_count(1)
        await expect(made).to_contain_text("14:00–14:40")
        await expect(made).to_contain_text("city-101 → village-201")
        await expect(made).to_contain_text("《春晓》" if upload == gbk else "水彩")


async def test_scheduler_sets_a_lessons_live_push_and_the_key_is_never_shown(
    page: Page, console: Console
) -> None:
    tuesday = _next_tuesday()
    lesson_id = await _seed_lesson(console, tuesday.replace(hour=11))
    await _open_timetable_next_week(page, "scheduler")
    await page.locator(f"[data-lesson='{lesson_id}']").first.click()
    details = page.locator("#tt-dialog[data-mode='details']")
    panel = details.locator("#push-panel")
    await expect(panel).to_contain_text("本课没有推流目标")
    await panel.locator("#push-add").click()
    await panel.locator(".push-name").fill("钉钉直播")
    await panel.locator(".push-url").fill("http://wrong.example/live/KEY-77")
    await panel.locator("#push-save").click()
    await expect(panel.locator("#push-error")).to_contain_text("targets[0].url")
    await panel.locator(".push-url").fill("rtmp://push.example/live/KEY-77")
    await panel.locator("#push-save").click()
    await expect(panel.locator("#push-error")).to_have_text("已保存")
    row = panel.locator("#push-targets tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("rtmp://push.example/live/***")
    await expect(row.locator("[data-state='unknown']")).to_be_visible()
    assert "KEY-77" not in await details.inner_html()

    # Add a second platform and save without typing the first key again: it is kept.
    await panel.locator("#push-add").click()
    await panel.locator(".push-name").nth(1).fill("微信直播")
    await panel.locator(".push-url").nth(1).fill("rtmp://wx.example/app/KEY-88")
    await panel.locator("#push-save").click()
    await expect(panel.locator("#push-targets tbody tr")).to_have_count(2)
    async with (
        console.session(headers=console.bearer("admin")) as http,
        http.get(f"{console.base}/api/v1/lessons/{lesson_id}/push") as r,
    ):
        doc = await r.json()
    assert [t["where"] for t in doc["targets"]] == [
        "rtmp://push.example/live/***",
        "rtmp://wx.example/app/***",
    ]
    with console.db() as s:
        assert [t.url for t in push_targets(s, lesson_id)] == [
            "rtmp://push.example/live/KEY-77",
            "rtmp://wx.example/app/KEY-88",
        ]
