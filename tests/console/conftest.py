"""A real controller with one console user of each role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from console.harness import BROWSER_WAIT_MS, CHROMIUM, PASSWORD, Console

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.daemon import ControllerConfig, ControllerDaemon
from controller.auth.accounts import add_user, create_api_token
from controller.auth.roles import ROLES
from controller.db.session import database_url, make_engine, migrate, sessions


@pytest.fixture
async def console(controller_config: ControllerConfig) -> AsyncIterator[Console]:
    """A controller daemon with users ``<role>`` (password PASSWORD, display name
    "<Role> User"), a spare user ``locky`` for lock-out tests, and two classrooms."""
    state = controller_config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    url = database_url(state)
    migrate(url)
    db = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(state)
    tokens = {}
    with db() as s:
        for role in ROLES:
            add_user(s, role, role, PASSWORD, f"{role.title()} User")
            tokens[role] = create_api_token(s, role, "tests")
        add_user(s, "locky", "scheduler", PASSWORD, "Locky")
        add_classroom(s, "city-101", "City 101", "City School", keys.public)
        add_classroom(s, "village-201", "Village 201", "Village School", keys.public)
    daemon = ControllerDaemon(controller_config)
    await daemon.start()
    try:
        assert daemon.http is not None
        assert daemon.certificate is not None
        yield Console(
            f"https://127.0.0.1:{daemon.http.port}",
            db,
            tokens,
            daemon.certificate.trust_pem,
            daemon.certificate.spki_sha256_b64(),
        )
    finally:
        await daemon.stop()


@pytest.fixture
async def page(console: Console) -> AsyncIterator[Any]:
    """A fresh Chromium page on the console's sign-in screen (browser test modules call
    ``require_browser()`` first, so Playwright is there)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=console.chromium_args()
        )
        try:
            tab = await browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(BROWSER_WAIT_MS)
            problems: list[str] = []
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            await tab.goto(console.base + "/")
            try:
                # Beside the suite's real lessons on two cores, the first page of a cold
                # renderer was twice not ready within 10 and 30 s (alone: about 1 s).
                await tab.wait_for_selector("body[data-ready='1']", timeout=20_000)
            except PlaywrightTimeout:
                print("console page not ready; what the page said:", *problems, sep="\n  ")
                await tab.reload()  # once more, and then any failure is the test's
                await tab.wait_for_selector("body[data-ready='1']", timeout=20_000)
            yield tab
        finally:
            if problems:  # shown with a failing test's output: what the page itself said
                print("the console page said:", *problems, sep="\n  ")
            await browser.close()
