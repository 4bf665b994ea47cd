"""The console in a real headless Chromium (Debian's, never a downloaded browser)."""

from __future__ import annotations

import asyncio

import pytest
from console.harness import PASSWORD, Console, require_browser

pytestmark = pytest.mark.e2e

require_browser()
from playwright.async_api import Page, Route, expect  # noqa: E402


async def _sign_in(page: Page, user: str, password: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", password)
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/session")):
        await page.click("#sign-in-button")


async def test_sign_in_shows_the_dashboard_with_name_and_role(
    page: Page,
) -> None:
    await expect(page.locator("#sign-in")).to_be_visible()
    await _sign_in(page, "scheduler", PASSWORD)
    await expect(page.locator("#shell")).to_be_visible()
    await expect(page.locator("#user-name")).to_have_text("Scheduler User")
    await expect(page.locator("#user-role")).to_contain_text("scheduler")
    await expect(page.locator("#classrooms li")).to_have_count(2)
    await expect(page.locator("#classrooms")).to_contain_text("City 101")


async def test_wrong_password_shows_the_servers_error(page: Page) -> None:
    await _sign_in(page, "admin", "not the password")
    await expect(page.locator("#sign-in-error")).to_have_text("wrong user name or password")
    await expect(page.locator("#shell")).to_be_hidden()


async def test_five_wrong_passwords_slow_this_address_and_never_lock_the_account(
    page: Page,
) -> None:
    for n in range(1, 6):
        await _sign_in(page, "locky", f"wrong-{n}")
        await expect(page.locator("#sign-in-error")).to_have_text("wrong user name or password")
    error = page.locator("#sign-in-error")
    await _sign_in(page, "locky", PASSWORD)  # at once: this address must wait first
    await expect(error).to_contain_text("too many failed sign-ins")
    await expect(error).to_contain_text("wait")
    await expect(page.locator("#shell")).to_be_hidden()
    await asyncio.sleep(2.5)  # the first wait is 2 s; the account itself was never locked
    await _sign_in(page, "locky", PASSWORD)
    await expect(page.locator("#shell")).to_be_visible()


async def test_sign_out_returns_to_sign_in_and_forgets_the_session(
    page: Page, console: Console
) -> None:
    await _sign_in(page, "admin", PASSWORD)
    await expect(page.locator("#shell")).to_be_visible()
    await page.click("#nav [data-page='audit']")
    await expect(page.locator("#audit-table")).to_contain_text("sign_in")
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.locator("#shell")).to_be_hidden()


async def _held(page: Page, path: str) -> asyncio.Event:
    """Hold the console's answers to ``path`` until the returned event is set: a slow
    county network, as a technician on a school's uplink sees it."""
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route(f"**{path}", hold)
    return release


async def _release_and_stay_on_audit(page: Page, held: asyncio.Event, path: str) -> None:
    """Let the held ``path`` through; patrol, left for audit meanwhile, is not drawn."""
    async with page.expect_response(lambda r: r.url.endswith(path)):
        held.set()
    await page.evaluate("() => new Promise((done) => setTimeout(done, 300))")
    await expect(page.locator("#patrol")).to_have_count(0)
    await expect(page.locator("#audit-table")).to_be_visible()


async def test_a_late_answer_does_not_pull_the_person_back_to_the_page_they_left(
    page: Page,
) -> None:
    """The dashboard answers after the person has gone to the audit page, and patrol's
    code or list after they left it: the page they chose stays (and patrol, not drawn,
    starts no viewer of a classroom's camera)."""
    dashboard = await _held(page, "/api/v1/dashboard")
    await _sign_in(page, "admin", PASSWORD)
    await expect(page.locator("#shell")).to_be_visible()
    await page.click("#nav [data-page='audit']")
    await expect(page.locator("#audit-table")).to_contain_text("sign_in")
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/dashboard")):
        dashboard.set()
    await page.evaluate("() => new Promise((done) => setTimeout(done, 300))")
    await expect(page.locator("#audit-table")).to_be_visible()
    await expect(page.locator("#dashboard")).to_have_count(0)
    await expect(page.locator("#page")).to_have_attribute("data-ready", "audit")

    # Patrol's module arrives after the person left: the page is not drawn.
    module = await _held(page, "/pages/patrol.js")
    await page.click("#nav [data-page='patrol']")
    await page.click("#nav [data-page='audit']")
    await expect(page.locator("#audit-table")).to_be_visible()
    await _release_and_stay_on_audit(page, module, "/pages/patrol.js")

    # Patrol's list of live lessons arrives after the person left.
    live = await _held(page, "/api/v1/live")
    async with page.expect_request(lambda r: r.url.endswith("/api/v1/live")):
        await page.click("#nav [data-page='patrol']")
    await page.click("#nav [data-page='audit']")
    await expect(page.locator("#audit-table")).to_be_visible()
    await _release_and_stay_on_audit(page, live, "/api/v1/live")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")


async def test_language_switch_to_english_relabels_the_nav_and_is_remembered(
    page: Page,
) -> None:
    await _sign_in(page, "inspector", PASSWORD)
    nav = page.locator("#nav")
    await expect(nav).to_contain_text("课表")
    await page.click("#lang-switch")
    for label in ("Dashboard", "Timetable", "Patrol", "Classrooms", "Recordings", "Reports"):
        await expect(nav).to_contain_text(label)
    await expect(nav).not_to_contain_text("课表")
    await expect(page.locator("#user-role")).to_contain_text("Inspector")
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await expect(page.locator("#nav")).to_contain_text("Audit")
