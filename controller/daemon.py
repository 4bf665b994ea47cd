"""The controller daemon: database, agent hub, orchestrator, relay and HTTP API."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
from dataclasses import dataclass

from controller.agents import AgentMessages
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.http_api import HttpApi
from controller.hub import AgentHub
from controller.keys import KeyBook, ServerKeys
from controller.orchestrator import Orchestrator
from controller.presence import Presence
from controller.registry import enrolled_keys
from controller.storage.local import LocalStorage
from protocols.media import aiortc_seam

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerConfig:
    """Where the controller listens and keeps its state."""

    state_dir: pathlib.Path
    bind_host: str = "127.0.0.1"
    control_port: int = 7700
    http_port: int = 7780
    heartbeat_s: float = 2.0
    prepare_s: float = 5.0
    media_addresses: tuple[str, ...] = ("127.0.0.1",)
    database_url: str | None = None

    @property
    def storage_dir(self) -> pathlib.Path:
        """Where recordings land (local storage backend)."""
        return self.state_dir / "storage"


class ControllerDaemon:
    """Runs every controller component in one event loop."""

    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self._stopping = asyncio.Event()
        self.hub: AgentHub | None = None
        self.http: HttpApi | None = None
        self.orchestrator: Orchestrator | None = None
        self.presence: Presence | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Migrate the database and start every component."""
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        url = cfg.database_url or database_url(cfg.state_dir)
        await asyncio.to_thread(migrate, url)
        factory = sessions(make_engine(url))
        keys = ServerKeys.load_or_create(cfg.state_dir)
        key_book = KeyBook()
        with factory() as db:
            key_book.load(enrolled_keys(db))
        if cfg.media_addresses:
            aiortc_seam.pin_host_addresses(list(cfg.media_addresses))
        self.presence = Presence(cfg.heartbeat_s)
        self.http = HttpApi(
            factory,
            LocalStorage(cfg.storage_dir),
            keys,
            lambda: self.presence.online if self.presence else [],
            self._recording_stored,
        )
        await self.http.start(cfg.bind_host, cfg.http_port)
        upload_url = f"http://{cfg.bind_host}:{self.http.port}"
        messages: AgentMessages | None = None

        async def on_message(classroom_id, env):  # type: ignore[no-untyped-def]
            assert messages is not None
            return await messages.handle(classroom_id, env)

        async def on_enrol(request):  # type: ignore[no-untyped-def]
            assert messages is not None
            return await messages.enrol(request)

        self.hub = AgentHub(
            f"tcp://{cfg.bind_host}:{cfg.control_port}",
            f"tcp://{cfg.bind_host}:{cfg.control_port + 1}",
            keys,
            key_book,
            on_message,
            on_enrol,
        )
        self.orchestrator = Orchestrator(factory, self.hub, self.presence, prepare_s=cfg.prepare_s)
        messages = AgentMessages(
            factory, keys, key_book, self.presence, self.orchestrator, upload_url
        )
        self.presence._on_offline = messages.offline
        await self.hub.start()
        await self.orchestrator.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="presence-sweep")
        log.info(
            "controller up: control tcp://%s:%d, http %s",
            cfg.bind_host,
            cfg.control_port,
            upload_url,
        )

    def _recording_stored(self, lesson_id: str) -> None:
        if self.orchestrator is not None:
            self.orchestrator.on_manifest_stored(lesson_id)

    async def _sweep(self) -> None:
        assert self.presence is not None
        while True:
            self.presence.sweep()
            await asyncio.sleep(self.presence.heartbeat_interval / 4)

    async def stop(self) -> None:
        """Stop every component; safe on partial start."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self.hub is not None:
            await self.hub.stop()
        if self.http is not None:
            await self.http.stop()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()
