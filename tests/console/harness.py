"""What the console tests share: the test password, the browser (path and flags, as the
console benchmark uses them), the running controller's handle."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from benchlib.console_browser import CHROMIUM, CHROMIUM_ARGS, pinned_key_flag
from helpers import https_session
from sqlalchemy.orm import Session, sessionmaker

PASSWORD = "correct horse battery"


BROWSER_WAIT_MS = 20_000
"""How long a browser test waits for a page to show something, or for a response."""


def require_browser() -> None:
    """Call at the top of a browser test module, before importing Playwright.

    Without Playwright or Debian's Chromium the module is skipped on a developer's
    machine, but fails in CI (``CI`` set), where scripts/bootstrap installs both: a
    skipped browser test there would prove nothing.
    """
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        missing.append(
            f"Chromium at {CHROMIUM} (apt-get install chromium, or CLASSBRIDGE_CHROMIUM)"
        )
    if not missing:
        from playwright.async_api import expect as async_expect
        from playwright.sync_api import expect as sync_expect

        # Assertions wait for what a person would see, not for a speed: speed is the
        # benchmarks' (bench-console). Beside the suite's real lessons on two cores, a
        # cold renderer has taken over Playwright's default 5 s to draw a page.
        async_expect.set_options(timeout=BROWSER_WAIT_MS)
        sync_expect.set_options(timeout=BROWSER_WAIT_MS)
        return
    reason = f"browser tests need {' and '.join(missing)}; scripts/bootstrap installs both"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@dataclass(frozen=True)
class Console:
    """A running controller: its HTTPS base URL, database, each role's API token, and
    the county CA it made (``trust_pem``) with its server key's SPKI hash for Chromium."""

    base: str
    db: sessionmaker[Session]
    tokens: dict[str, str]
    trust_pem: str = ""
    spki: str = ""

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        """An HTTP client that trusts this controller's CA only."""
        return https_session(self.trust_pem, **kwargs)

    def chromium_args(self) -> list[str]:
        """Chromium's flags with this controller's server key pinned (see CHROMIUM_ARGS)."""
        return [*CHROMIUM_ARGS, pinned_key_flag(self.spki)]

    def bearer(self, role: str) -> dict[str, str]:
        """Headers that call the API with ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PASSWORD", "Console", "require_browser"]
