"""The agent updates page in a real headless Chromium: an administrator sees the signed
releases, puts a classroom in the pilot ring, starts a rollout (a bad window is refused
naming it), sees each classroom's progress, pauses and resumes it; a technician sees it
all and changes nothing."""

from __future__ import annotations

import pathlib

import pytest
from console.harness import PASSWORD, Console, require_browser
from release_fixtures import build_wheel, make_key, sign_wheel

from controller.db.models import Classroom
from controller.releases import store
from protocols.releases import load_public_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

require_browser()
from playwright.async_api import Page, expect  # noqa: E402


@pytest.fixture
def released(console: Console, tmp_path: pathlib.Path) -> str:
    private, public = make_key(tmp_path / "key")
    wheel = build_wheel(tmp_path / "dist", "0.2.0")
    signature = sign_wheel(wheel, private).read_text()
    key = load_public_key(public.read_bytes(), "test key")
    with console.db() as s:
        for i, room in enumerate(("city-101", "village-201")):
            row = s.get(Classroom, room)
            assert row is not None
            row.public_key, row.agent_version = f"{i}" * 40, "0.1.0"
        s.commit()
        store.add_release(s, wheel.name, wheel.read_bytes(), signature, [key], "cli", "修复")
    return "0.2.0"


async def _open(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("#shell:not([hidden])")
    await page.click("nav button[data-page='releases']")
    await page.wait_for_selector("body[data-ready='1'] #releases")


async def test_an_admin_sets_a_ring_starts_pauses_and_resumes_a_rollout(
    page: Page, console: Console, released: str
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await _open(page, "admin")
    release = page.locator("#rl-releases tbody tr", has_text=released)
    await expect(release).to_contain_text("修复")

    await page.select_option("#rl-ring-scope", "classroom")
    await page.fill("#rl-ring-name", "city-101")
    await page.select_option("#rl-ring-ring", "pilot")
    await page.click("#rl-ring-save")
    await expect(page.locator("#rl-message")).to_have_text("已设置 city-101 的升级圈")
    await expect(page.locator("#rl-rings tbody tr", has_text="city-101")).to_contain_text("试点")

    await page.fill("#rl-window-start", "25:00")
    await page.click("#rl-start")
    await expect(page.locator("#rl-message")).to_contain_text("start '25:00' must be HH:MM")
    await page.fill("#rl-window-start", "00:00")
    await page.fill("#rl-window-end", "00:00")
    await page.click("#rl-start")
    await expect(page.locator("#rl-message")).to_have_text(f"已开始升级到 {released}")
    block = page.locator("section.rl-rollout").first
    await expect(block).to_contain_text("进行中，当前圈：试点")
    await expect(block.locator("tr[data-classroom='city-101']")).to_contain_text("试点")
    await expect(block.locator("tr[data-classroom='village-201']")).to_contain_text("全面")

    await block.locator("button[id^='rl-pause-']").click()
    await expect(page.locator("#rl-message")).to_contain_text("已暂停")
    block = page.locator("section.rl-rollout").first
    await expect(block).to_contain_text("已暂停")
    await expect(block.locator(".rl-reason")).to_contain_text("paused by admin")
    await block.locator("button[id^='rl-resume-']").click()
    await expect(page.locator("section.rl-rollout").first).to_contain_text("进行中")
    # The one refusal (the bad window's 400) is the only error the page logged.
    assert [e for e in errors if "status of 400" not in e] == [], errors


async def test_a_technician_sees_the_rollout_and_changes_nothing(
    page: Page, console: Console, released: str
) -> None:
    with console.db() as s:
        from controller.releases.planner import Window

        store.start_rollout(s, released, Window("22:00", "06:00"), 600, "admin")
    await _open(page, "technician")
    await expect(page.locator("section.rl-rollout").first).to_contain_text(released)
    await expect(page.locator("#rl-releases")).to_contain_text(released)
    assert await page.locator("#rl-start-form, #rl-ring-form, button[id^='rl-pause-']").count() == 0
