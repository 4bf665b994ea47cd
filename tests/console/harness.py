"""What the console tests share: the test password, the browser path, the running
controller's handle."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

CHROMIUM = pathlib.Path(os.environ.get("CLASSBRIDGE_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Console:
    """A running controller: its base URL, database, and each role's API token."""

    base: str
    db: sessionmaker[Session]
    tokens: dict[str, str]

    def bearer(self, role: str) -> dict[str, str]:
        """Headers that call the API with ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}
