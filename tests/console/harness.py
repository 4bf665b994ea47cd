"""What the console tests share: the test password, the browser (path and flags, as the
console benchmark uses them), the running controller's handle."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import pytest
from benchlib.console_browser import CHROMIUM, CHROMIUM_ARGS
from sqlalchemy.orm import Session, sessionmaker

PASSWORD = "correct horse battery"


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
        return
    reason = f"browser tests need {' and '.join(missing)}; scripts/bootstrap installs both"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@dataclass(frozen=True)
class Console:
    """A running controller: its base URL, database, and each role's API token."""

    base: str
    db: sessionmaker[Session]
    tokens: dict[str, str]

    def bearer(self, role: str) -> dict[str, str]:
        """Headers that call the API with ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PASSWORD", "Console", "require_browser"]
