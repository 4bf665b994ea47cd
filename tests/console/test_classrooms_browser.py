"""The classrooms page in a real headless Chromium: the inventory with device states,
and one classroom's health history drawn as inline SVG charts (no CSP violations)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from console.harness import PASSWORD, Console, require_browser

from controller.agents.health_history import HealthSampler
from controller.db.models import Classroom
from controller.db.session import utcnow

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402

HEALTH: dict[str, object] = {
    "cpu_pct": 35.0,
    "mem_pct": 50.0,
    "temperature_c": 52.0,
    "audio_level_dbfs": -30.0,
    "rtt_ms": 14.0,
    "disk_pct": 40.0,
    "devices": {"camera-teacher": {"state": "lost", "detail": "USB unplugged"}},
    "media": [{"track": "teacher", "direction": "send", "bitrate_bps": 1_500_000}],
}


def _seed(console: Console) -> None:
    """An hour of samples and a latest heartbeat for city-101."""
    sampler = HealthSampler()
    now = utcnow()
    with console.db() as db:
        room = db.get(Classroom, "city-101")
        assert room is not None
        room.health, room.agent_version, room.profile_name = HEALTH, "0.1.0", "lab-box"
        for minutes in range(60, 0, -2):
            sampler.record(db, "city-101", HEALTH, now - timedelta(minutes=minutes))
        db.commit()


@pytest.fixture
async def page(page: Page) -> AsyncIterator[Page]:
    """The console's page, signed in as a technician (CSP violations are collected)."""
    await page.fill("#username", "technician")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("#shell:not([hidden])")
    yield page


async def test_inventory_and_health_charts(page: Page, console: Console) -> None:
    _seed(console)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.click("nav button[data-page='classrooms']")
    rows = page.locator("#classroom-inventory tbody tr")
    await expect(rows).to_have_count(2)
    city = page.locator("#classroom-inventory tr[data-classroom='city-101']")
    await expect(city).to_contain_text("0.1.0")
    await expect(city).to_contain_text("lab-box")
    await expect(city.locator(".cr-chip.dev-lost")).to_have_attribute("title", "USB unplugged")
    await city.locator("button[data-classroom='city-101']").click()
    detail = page.locator("#classroom-detail[data-classroom='city-101']")
    await expect(detail).to_be_visible()
    await expect(detail.locator("svg.hc-chart")).to_have_count(6)
    await expect(detail.locator("svg[data-field='cpu'] polyline")).to_have_count(1)
    await expect(detail.locator("svg[data-field='send_kbps'] .hc-last")).to_have_text("1500 kbps")
    # a technician's remote actions: with no agent connected, the answer says why
    await page.click("#act-doctor")
    await expect(page.locator("#action-status")).to_contain_text("online")
    await page.select_option("#cr-hours", "1")
    await expect(page.locator("#classroom-detail svg[data-field='cpu'] polyline")).to_have_count(1)
    await page.click("#cr-back")
    await expect(page.locator("#classroom-inventory")).to_be_visible()
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_going_back_while_the_charts_load_stays_back(page: Page, console: Console) -> None:
    """A technician changes the hours and goes back to the list before the charts came:
    the late answer must not pull them back into the classroom."""
    import asyncio

    from playwright.async_api import Route

    _seed(console)
    await page.click("nav button[data-page='classrooms']")
    await page.locator("#classroom-inventory button[data-classroom='city-101']").click()
    await expect(page.locator("#classroom-detail")).to_be_visible()
    released = asyncio.Event()

    async def slow(route: Route) -> None:
        await released.wait()
        await route.continue_()

    await page.route("**/health?hours=1", slow)
    await page.select_option("#cr-hours", "1")
    await page.click("#cr-back")
    await expect(page.locator("#classroom-inventory")).to_be_visible()
    released.set()  # the charts' answer arrives now, late
    await page.wait_for_timeout(500)
    await expect(page.locator("#classroom-inventory")).to_be_visible()
    await expect(page.locator("#classroom-detail")).to_have_count(0)
