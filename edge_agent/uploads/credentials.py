"""The agent's upload credentials (controller URL and upload token), kept in its state
directory so uploads can go on after a restart before the control link is back.

The file holds a secret: it is created with mode 0600 (never widened afterwards), written
whole and renamed into place, so no reader ever sees a half-written or world-readable
token.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "upload_token.json"


@dataclass(frozen=True)
class UploadCredentials:
    """Where to upload, and the bearer token to show."""

    url: str
    token: str


class CredentialStore:
    """The newest credentials the controller gave, in memory and on disk."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.path = state_dir / CREDENTIALS_FILE
        self._current: UploadCredentials | None = None
        self._loaded = False

    @property
    def current(self) -> UploadCredentials | None:
        """The credentials to upload with; read from disk the first time."""
        if not self._loaded:
            self._loaded = True
            self._current = self._read()
        return self._current

    def _read(self) -> UploadCredentials | None:
        try:
            doc = json.loads(self.path.read_text())
            return UploadCredentials(url=str(doc["url"]), token=str(doc["token"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s is unreadable (%s); waiting for the controller's token", self.path, err)
            return None

    def save(self, creds: UploadCredentials) -> None:
        """Use ``creds`` from now on and keep them (mode 0600 from creation)."""
        self._current, self._loaded = creds, True
        if self._read() == creds:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)  # O_EXCL below: never reuse a file of another mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(creds), fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.path)

    def update_token(self, token: str) -> None:
        """A rotated token for the same controller URL."""
        url = self.current.url if self.current is not None else ""
        self.save(UploadCredentials(url=url, token=token))
