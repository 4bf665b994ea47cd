"""The controller daemon: database, agent hub, orchestrator, relay and HTTP API."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
from dataclasses import dataclass, field

from controller.agents import AgentMessages
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.http_api import HttpApi
from controller.hub import AgentHub
from controller.keys import KeyBook, ServerKeys
from controller.orchestrator import Orchestrator
from controller.presence import Presence
from controller.registry import enrolled_keys
from controller.retention import RetentionPolicy, run_retention
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import S3Location, S3Storage
from controller.uploads import UploadService
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
    prepare_s: float = 300.0  # agents join and report readiness 5 minutes ahead
    media_addresses: tuple[str, ...] = ("127.0.0.1",)
    database_url: str | None = None
    # "" keeps recordings in state_dir/storage; "s3://bucket/prefix" uses an S3 store
    # (credentials from the usual AWS_* environment variables).
    storage_url: str = ""
    s3_endpoint: str | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

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
        self._retainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Migrate the database and start every component."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
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
        self.storage = await asyncio.to_thread(self._open_storage)
        self.uploads = UploadService(factory, self.storage, self._recording_stored)
        self._sessions = factory
        self.http = HttpApi(
            factory,
            self.uploads,
            keys,
            lambda: self.presence.online if self.presence else [],
            lambda: self.orchestrator,
            lambda: self.hub,
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
        self._retainer = asyncio.create_task(self._retain(), name="retention")
        log.info(
            "controller up: control tcp://%s:%d, http %s",
            cfg.bind_host,
            cfg.control_port,
            upload_url,
        )

    def _open_storage(self) -> StorageBackend:
        cfg = self.config
        if not cfg.storage_url:
            return LocalStorage(cfg.storage_dir)
        s3 = S3Storage(S3Location.parse(cfg.storage_url, cfg.s3_endpoint))
        s3.ensure_bucket()
        return s3

    def _recording_stored(self, lesson_id: str, classroom_id: str) -> None:
        orchestrator = self.orchestrator
        if orchestrator is not None and self._loop is not None:
            # Called from a worker thread: hand over to the event loop.
            self._loop.call_soon_threadsafe(orchestrator.on_manifest_stored, lesson_id)

    async def _retain(self) -> None:
        """Apply the retention policy once an hour (and at start)."""
        while True:
            try:
                await asyncio.to_thread(
                    run_retention, self._sessions, self.storage, self.config.retention
                )
            except Exception:
                log.exception("retention run failed; trying again in an hour")
            await asyncio.sleep(3600)

    async def _sweep(self) -> None:
        assert self.presence is not None
        while True:
            self.presence.sweep()
            await asyncio.sleep(self.presence.heartbeat_interval / 4)

    async def stop(self) -> None:
        """Stop every component; safe on partial start."""
        for task in (self._sweeper, self._retainer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
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
