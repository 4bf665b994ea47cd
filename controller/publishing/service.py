"""The origin's lifecycle inside the controller: its secret, its gate, its nginx.

``PublishingOptions`` is what the operator sets (``--hls-origin`` and friends);
:class:`PublishingService` turns it into an :class:`OriginConfig` under the controller's
state directory, keeps the origin's secret in ``state_dir/hls-origin.key`` (made on first
start, owner-only), starts the ``on_publish`` gate and then nginx, restarts nginx when it
exits, and stops both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from controller.publishing.gate import PublishGate
from controller.publishing.origin import PRIVATE_NETWORKS, HlsOrigin, OriginConfig
from controller.publishing.store import is_published

log = logging.getLogger(__name__)
SECRET_FILE = "hls-origin.key"


@dataclass(frozen=True)
class PublishingOptions:
    """The operator's settings for the HLS origin (see :class:`OriginConfig`)."""

    http_listen: str
    rtmp_listen: str = "127.0.0.1:1935"
    push_base: str = ""
    public_base: str = ""
    intranet_base: str = ""
    intranet_networks: tuple[str, ...] = PRIVATE_NETWORKS

    def __post_init__(self) -> None:
        # Checked at once (a bad listener or network is named before anything starts).
        self.config(pathlib.Path("/nonexistent"), "0" * 32)

    def config(self, directory: pathlib.Path, secret: str) -> OriginConfig:
        """The origin's configuration with this directory and secret."""
        return OriginConfig(
            directory=directory,
            secret=secret,
            rtmp_listen=self.rtmp_listen,
            http_listen=self.http_listen,
            push_base=self.push_base,
            public_base=self.public_base,
            intranet_base=self.intranet_base,
            intranet_networks=self.intranet_networks,
        )


def load_or_create_secret(state_dir: pathlib.Path) -> str:
    """The origin's secret (hex), made on first use and kept owner-only."""
    path = state_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def origin_config(options: PublishingOptions, state_dir: pathlib.Path) -> OriginConfig:
    """The origin's configuration under the controller's state directory."""
    return options.config(state_dir / "hls-origin", load_or_create_secret(state_dir))


class OriginKeeper:
    """Restarts nginx when it exits (logged and counted): the viewers' links keep working
    and the lead's push, which retries by itself, comes back within seconds."""

    def __init__(self, origin: HlsOrigin, gate_port: int, every_s: float = 2.0) -> None:
        self._origin = origin
        self._gate_port = gate_port
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.failures = 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            if self._origin.running:
                continue
            log.warning("HLS origin: nginx is gone; restarting it (%s)", self._origin.log()[-300:])
            try:
                await asyncio.to_thread(self._origin.start, self._gate_port)
                self.restarts += 1
            except (RuntimeError, OSError):
                self.failures += 1
                log.exception("HLS origin: nginx did not restart; trying again")

    def start(self) -> None:
        """Start watching."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hls-origin")

    async def stop(self) -> None:
        """Stop watching (before stopping nginx)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class PublishingService:
    """The gate and nginx; ``start()`` then ``stop()`` (also after a failed start)."""

    def __init__(self, config: OriginConfig, sessions: sessionmaker[Session]) -> None:
        self.config = config
        self._sessions = sessions
        self.gate = PublishGate(config.secret, self._published)
        self.origin = HlsOrigin(config)
        self.keeper: OriginKeeper | None = None

    def _published(self, lesson_id: str) -> bool:
        with self._sessions() as db:
            return is_published(db, lesson_id)

    async def start(self) -> None:
        """Start the gate, then nginx (its configuration names the gate's port)."""
        await self.gate.start()
        await asyncio.to_thread(self.origin.start, self.gate.port)
        self.keeper = OriginKeeper(self.origin, self.gate.port)
        self.keeper.start()
        log.info(
            "HLS origin up: RTMP %s, viewers %s (nginx pid %s)",
            self.config.push_url,
            self.config.viewer_base,
            self.origin.pid,
        )

    async def stop(self) -> None:
        """Stop nginx, then the gate."""
        if self.keeper is not None:
            await self.keeper.stop()
        await asyncio.to_thread(self.origin.stop)
        await self.gate.stop()
