"""The dashboard in a real headless Chromium: alerts from heartbeats, acknowledged by a
technician; an inspector may not acknowledge."""

from __future__ import annotations

import pytest
from console.harness import PASSWORD, Console, require_browser

from controller.agents.alerts import record_heartbeat_alerts
from controller.db.models import AlertState, Classroom
from controller.db.session import utcnow

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, expect  # noqa: E402

HEALTH = {
    "seq": 7,
    "disk_pct": 40.0,
    "disk_free_bytes": 50 * 1024**3,
    "devices": {"camera-teacher": {"state": "lost", "detail": "USB unplugged"}},
    "alerts": {},
    "readiness": {},
    "uploads_pending": 0,
    "clock_offset_ms": 1200.0,
}


def _seed_health(console: Console) -> int:
    """Store a heartbeat's health for city-101 the way the heartbeat handler does."""
    with console.db() as db:
        room = db.get(Classroom, "city-101")
        assert room is not None
        room.health = HEALTH
        record_heartbeat_alerts(db, "city-101", HEALTH, utcnow())
        db.commit()
        row = db.query(AlertState).filter_by(key="device_lost:camera-teacher").one()
        return int(row.id)


async def _sign_in(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/dashboard")):
        await page.click("#sign-in-button")
    await page.wait_for_selector("body[data-ready='1'] #dashboard")


async def test_technician_acknowledges_an_alert_and_the_inspector_cannot(
    page: Page, console: Console
) -> None:
    alert_id = _seed_health(console)
    await _sign_in(page, "technician")
    row = page.locator("#alerts tr[data-key='device_lost:camera-teacher']")
    await expect(row).to_contain_text("City 101")
    await expect(row).to_contain_text("USB unplugged")
    await expect(page.locator("#alerts tr[data-key='clock_offset']")).to_be_visible()
    # the live view of each school's planned against measured bandwidth
    await expect(page.locator("#bandwidth")).to_be_visible()
    await expect(row).to_have_class("unacknowledged")
    await row.locator("button.ack").click()
    row = page.locator("#alerts tr[data-key='device_lost:camera-teacher']")
    await expect(row).to_contain_text("technician")
    await expect(row.locator("button.ack")).to_be_disabled()
    with console.db() as db:
        stored = db.get(AlertState, alert_id)
        assert stored is not None and stored.acknowledged_by == "technician"

    async with console.session(headers=console.bearer("inspector")) as http:
        async with http.post(f"{console.base}/api/v1/alerts/{alert_id}/ack") as r:
            assert r.status == 403
            assert "inspector" in (await r.json())["error"]
        async with http.post(
            f"{console.base}/api/v1/alerts/{alert_id}/silence", json={"hours": 2}
        ) as r:
            assert r.status == 403
        async with http.get(f"{console.base}/api/v1/dashboard") as r:
            doc = await r.json()
            assert doc["can_act"] is False
            assert {a["key"] for a in doc["alerts"]} >= {"device_lost:camera-teacher"}


async def test_inspector_sees_a_silenced_alert_without_actions(
    page: Page, console: Console
) -> None:
    alert_id = _seed_health(console)
    async with console.session(headers=console.bearer("scheduler")) as http:
        async with http.post(
            f"{console.base}/api/v1/alerts/{alert_id}/silence", json={"hours": 0}
        ) as r:
            assert r.status == 400 and "hours" in (await r.json())["error"]
        async with http.post(
            f"{console.base}/api/v1/alerts/{alert_id}/silence", json={"hours": 4}
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["silenced"] is True
    await _sign_in(page, "inspector")
    row = page.locator(f"#alerts tr[data-alert='{alert_id}']")
    await expect(row).to_have_class("silenced")
    await expect(page.locator("#alerts button")).to_have_count(0)
    await expect(page.locator("#classrooms li")).to_have_count(2)
