"""The controller daemon: database, agent hub, orchestrator, relay and HTTP API."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
import socket
from dataclasses import dataclass, field

from controller.agents.hub import AgentHub
from controller.agents.keys import KeyBook, ServerKeys
from controller.agents.messages import AgentMessages
from controller.agents.presence import Presence
from controller.agents.registry import enrolled_keys
from controller.app.http_api import HttpApi
from controller.auth import audit
from controller.auth.audit_syslog import AuditSyslog, SyslogTarget
from controller.cluster.metrics import ClusterCollector
from controller.cluster.node import ClusterNode, node_name
from controller.common.security import SecurityPolicy
from controller.db.reach import DEFAULT_WAIT_S, wait_for_database
from controller.db.session import database_url, make_engine, migrate, sessions
from controller.db.urls import is_postgresql, normalise
from controller.emergency.publishing import emergency_publisher
from controller.lessons.links import AgentLink, OnlineView
from controller.lessons.orchestrator import Orchestrator
from controller.media_plane.config import MediaPlaneConfig
from controller.media_plane.plane import MediaPlane
from controller.media_plane.startup import check_all
from controller.metrics.control_plane import ControlPlaneCollector
from controller.metrics.relay import RelayCollector
from controller.notify.dispatcher import NotifyDispatcher
from controller.publishing.service import PublishingOptions, PublishingService, origin_config
from controller.recordings.retention import RetentionPolicy, run_retention
from controller.recordings.upload_tokens import UploadTokenRotator
from controller.recordings.uploads import UploadService
from controller.relay.process import RelayProcess
from controller.releases.roller import Roller
from controller.report_archive.metrics import ReportArchiveCollector
from controller.report_archive.scheduler import ReportScheduler
from controller.storage.backend import StorageBackend
from controller.storage.local import LocalStorage
from controller.storage.s3 import DEFAULT_PRESIGN_S, S3Location, S3Storage
from controller.tls.ca import WILDCARD_HOSTS, ServerCertificate
from controller.tls.policy import TlsPolicy, parse_networks
from controller.tls.server import server_certificate, server_context
from protocols.media import aiortc_seam
from protocols.private_files import private_dir, restrict_umask

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
    # None: SQLite in state_dir; else postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB.
    database_url: str | None = None
    # How long start-up waits for an unreachable database (retrying with backoff).
    database_wait_s: float = DEFAULT_WAIT_S
    # "" keeps recordings in state_dir/storage; "s3://bucket/prefix" uses an S3 store
    # (credentials from the usual AWS_* environment variables).
    storage_url: str = ""
    s3_endpoint: str | None = None
    # How long presigned S3 URLs (agents' part uploads, browsers' playback) stay valid.
    presign_s: int = DEFAULT_PRESIGN_S
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    # "udp://host:port" or "unix:/dev/log": every audit row also goes there (RFC 5424).
    audit_syslog: str = ""
    # Days the audit log is kept (at least audit.KEEP_DAYS_FLOOR, six months).
    audit_keep_days: int = audit.KEEP_DAYS_FLOOR

    # HTTPS: the operator's certificate and key, or None for the county CA's (made in
    # state_dir/tls on first start); extra names for that certificate.
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    tls_names: tuple[str, ...] = ()
    # A TLS-terminating proxy's addresses (CIDR); with any, plain HTTP on proxy_port.
    trusted_proxies: tuple[str, ...] = ()
    proxy_port: int = 7781
    # How often the open agent rollout takes its next step (controller.releases).
    release_tick_s: float = 30.0
    # Several controllers: every controller's control socket (tcp://HOST:PORT), in the
    # order agents try them; given to agents at enrolment. Empty: this controller only.
    agent_endpoints: tuple[str, ...] = ()
    # The HLS origin for open lessons (controller.publishing); None: no publishing.
    publishing: PublishingOptions | None = None
    # Which media server carries lessons (--media-plane FILE); None: the built-in relay.
    media_plane: MediaPlaneConfig | None = None

    def __post_init__(self) -> None:
        if self.audit_syslog:
            SyslogTarget.parse(self.audit_syslog)
        if self.audit_keep_days < audit.KEEP_DAYS_FLOOR:
            raise ValueError(
                f"audit_keep_days {self.audit_keep_days}: the audit log is kept at least "
                f"{audit.KEEP_DAYS_FLOOR} days"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give --tls-cert and --tls-key together, or neither")
        parse_networks(self.trusted_proxies)  # raises ValueError naming a bad one
        if self.database_url is not None:
            normalise(self.database_url)  # raises ValueError, the password hidden
        for endpoint in self.agent_endpoints:
            host, _, port = endpoint.rpartition(":")
            if not host.startswith("tcp://") or not port.isdigit():
                raise ValueError(
                    f"--agent-endpoint {endpoint!r}: write tcp://HOST:PORT (a control socket)"
                )
        if self.database_wait_s < 0:
            raise ValueError(f"database_wait_s {self.database_wait_s}: give 0 or more seconds")

    @property
    def public_host(self) -> str:
        """The host agents reach the HTTPS API on: the bind address, or for a wildcard
        bind the first --tls-name, else this machine's name (both in the certificate)."""
        if self.bind_host not in WILDCARD_HOSTS:
            return self.bind_host
        return self.tls_names[0] if self.tls_names else socket.gethostname()

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
        self.messages: AgentMessages | None = None
        self.token_rotator: UploadTokenRotator | None = None
        self.notifier: NotifyDispatcher | None = None
        self.roller: Roller | None = None
        self.publishing: PublishingService | None = None
        self.reports: ReportScheduler | None = None
        self.media_plane: MediaPlane | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._retainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._audit_syslog: AuditSyslog | None = None
        self.certificate: ServerCertificate | None = None
        # Several controllers on PostgreSQL: leadership, routing, cluster-wide presence.
        self.cluster: ClusterNode | None = None
        self._link: AgentLink | None = None  # the hub, or the cluster's routing hub
        # The built-in relay, in a process of its own (started on a lesson's first relay).
        self.relay: RelayProcess | None = None
        self._online: OnlineView | None = None  # presence, or the cluster's

    async def start(self) -> None:
        """Migrate the database and start every component."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        private_dir(cfg.state_dir)
        if cfg.audit_syslog:
            self._audit_syslog = AuditSyslog(SyslogTarget.parse(cfg.audit_syslog))
            self._audit_syslog.start()
        url = cfg.database_url or database_url(cfg.state_dir)
        await asyncio.to_thread(wait_for_database, url, cfg.database_wait_s)
        await asyncio.to_thread(migrate, url)
        factory = sessions(make_engine(url))
        keys = ServerKeys.load_or_create(cfg.state_dir)
        self.certificate = certificate = await asyncio.to_thread(
            server_certificate,
            cfg.state_dir,
            cfg.bind_host,
            cfg.tls_names,
            cfg.tls_cert,
            cfg.tls_key,
        )
        log.info(
            "TLS certificate %s%s; agents pin SHA-256 %s when they enrol",
            certificate.cert_path,
            " (new)" if certificate.issued else "",
            certificate.fingerprint,
        )
        key_book = KeyBook()
        with factory() as db:
            key_book.load(enrolled_keys(db))
        # The relay process sizes its receive buffers and pins these addresses itself.
        if cfg.media_addresses:
            aiortc_seam.pin_host_addresses(list(cfg.media_addresses))
        self.presence = Presence(cfg.heartbeat_s)
        self.storage = await asyncio.to_thread(self._open_storage)
        self.uploads = UploadService(factory, self.storage, self._recording_stored)
        self._sessions = factory
        self.notifier = notifier = NotifyDispatcher(
            factory,
            online=lambda: self._online.online if self._online else [],
            leads=self._leads,
        )
        origin = (
            origin_config(cfg.publishing, cfg.state_dir) if cfg.publishing is not None else None
        )
        self.http = HttpApi(
            factory,
            self.uploads,
            keys,
            lambda: self._online.online if self._online else [],
            lambda: self.orchestrator,
            lambda: self._link,
            lambda: self.orchestrator,
            security=cfg.security,
            tls_policy=TlsPolicy(parse_networks(cfg.trusted_proxies)),
            notify_poke=notifier.poke,
            notify_sender=notifier.sender,
            publishing=origin,
        )
        await self.http.start(
            cfg.bind_host,
            cfg.http_port,
            tls=server_context(certificate),
            proxy_port=cfg.proxy_port,
        )
        host = cfg.public_host
        upload_url = f"https://{f'[{host}]' if ':' in host else host}:{self.http.port}"
        messages: AgentMessages | None = None

        async def on_message(classroom_id, env):  # type: ignore[no-untyped-def]
            assert messages is not None
            return await messages.handle(classroom_id, env)

        async def on_enrol(request):  # type: ignore[no-untyped-def]
            assert messages is not None
            return await messages.enrol(request)

        def on_message_now(classroom_id, env):  # type: ignore[no-untyped-def]
            assert messages is not None
            return messages.handle_now(classroom_id, env)

        self.hub = AgentHub(
            f"tcp://{cfg.bind_host}:{cfg.control_port}",
            f"tcp://{cfg.bind_host}:{cfg.control_port + 1}",
            keys,
            key_book,
            on_message,
            on_enrol,
            on_message_now,
        )
        self._link, self._online = self.hub, self.presence
        if is_postgresql(url):
            self.cluster = ClusterNode(
                url, node_name(cfg.control_port), factory, self.hub, self.presence
            )
            self._link, self._online = self.cluster.hub, self.cluster.online
        self.media_plane = await self._start_media_plane()
        self.orchestrator = Orchestrator(
            factory, self._link, self._online, prepare_s=cfg.prepare_s, media=self.media_plane
        )
        self.orchestrator.publisher = emergency_publisher(origin)
        relay = self.relay = RelayProcess(cfg.media_addresses, self.orchestrator.relay_restarted)
        relay.bind()
        self.orchestrator.new_relay = relay.open
        messages = AgentMessages(
            factory,
            keys,
            key_book,
            self.presence,
            self.orchestrator,
            upload_url,
            upload_token_grace=cfg.security.upload_token_grace,
            tls_trust_pem=certificate.trust_pem,
            agent_endpoints=cfg.agent_endpoints,
        )
        self.presence._on_offline = messages.offline
        if self.cluster is not None:
            cluster = self.cluster

            def offline(classroom_id: str) -> None:
                messages.offline(classroom_id)
                cluster.agent_offline(classroom_id)

            self.presence._on_offline = offline
            cluster.answer_offer = messages.answer_offer
            self.http.health_detail = lambda: cluster.leadership.status().as_dict()
            cluster.patrol = self.http.patrol  # the leader's side of patrol
            self.http.patrol.leader = cluster  # a follower asks the leader
            self.http.metrics.registry.register(ClusterCollector(cluster))
        self.messages = messages
        # This process's heartbeat batches and offline declarations, beside the database's
        # figures in /api/v1/metrics.
        self.http.metrics.registry.register(
            ControlPlaneCollector(messages.heartbeats, self.presence)
        )
        self.http.metrics.registry.register(
            RelayCollector(self.orchestrator.relay_stats, lambda: relay.restarts)
        )
        await messages.heartbeats.start()
        await self.hub.start()
        if self.cluster is not None:
            # The orchestrator runs while this controller holds the leader's lock.
            await self.cluster.start(self.orchestrator, key_book)
        else:
            await self.orchestrator.start()
        presence = self.presence
        self.token_rotator = UploadTokenRotator(
            factory,
            self.hub,
            lambda: presence.online,
            cfg.security.upload_token_rotation,
            cfg.security.upload_token_grace,
        )
        await self.token_rotator.start()
        await notifier.start()
        self.roller = Roller(
            factory,
            lambda: presence.online,
            cfg.release_tick_s,
            leads=self._leads,
        )
        await self.roller.start()
        # Monthly and term reports, written on the leader only.
        self.reports = ReportScheduler(factory, self.storage, self._leads)
        self.http.metrics.registry.register(ReportArchiveCollector(self.reports))
        await self.reports.start()
        if origin is not None:
            self.publishing = PublishingService(origin, factory)
            await self.publishing.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="presence-sweep")
        self._retainer = asyncio.create_task(self._retain(), name="retention")
        log.info(
            "controller up: control tcp://%s:%d, https %s%s",
            cfg.bind_host,
            cfg.control_port,
            upload_url,
            f", plain HTTP for trusted proxies on {self.http.proxy_port}"
            if self.http.proxy_port
            else "",
        )

    async def _start_media_plane(self) -> MediaPlane | None:
        """The Janus instances when the media plane's file says ``backend = "janus"``; each
        instance's problem (a wrong secret or address) is logged naming it and the setting."""
        plane_cfg = self.config.media_plane
        if plane_cfg is None or plane_cfg.backend != "janus":
            return None
        for check in await check_all(plane_cfg):
            level = (
                logging.ERROR
                if not check.ok
                else logging.WARNING
                if check.warnings
                else logging.INFO
            )
            log.log(level, "media plane: %s", check.line())
        plane = MediaPlane(plane_cfg)
        await plane.start()
        return plane

    def _open_storage(self) -> StorageBackend:
        cfg = self.config
        if not cfg.storage_url:
            return LocalStorage(cfg.storage_dir)
        s3 = S3Storage(S3Location.parse(cfg.storage_url, cfg.s3_endpoint), presign_s=cfg.presign_s)
        s3.ensure_bucket()
        return s3

    def _recording_stored(self, lesson_id: str, classroom_id: str) -> None:
        orchestrator = self.orchestrator
        if orchestrator is not None and self._loop is not None:
            # Called from a worker thread: hand over to the event loop.
            self._loop.call_soon_threadsafe(orchestrator.on_manifest_stored, lesson_id)

    def _leads(self) -> bool:
        """Whether this controller does the county-wide chores (orchestration, rollouts,
        alerts, retention, reports): always on one controller, the leader among several."""
        return self.orchestrator is not None and self.orchestrator.running

    async def _retain(self) -> None:
        """Apply the retention policy once an hour (and at start), on the leader only."""
        while True:
            if not self._leads():
                await asyncio.sleep(60)
                continue
            try:
                await asyncio.to_thread(
                    run_retention, self._sessions, self.storage, self.config.retention
                )
            except Exception:
                log.exception("retention run failed; trying again in an hour")
            try:
                await asyncio.to_thread(self._prune_audit)
            except Exception:
                log.exception("audit log pruning failed; trying again in an hour")
            await asyncio.sleep(3600)

    def _prune_audit(self) -> None:
        with self._sessions() as db:
            gone = audit.prune(db, self.config.audit_keep_days)
        if gone:
            log.info(
                "audit log: %d rows older than %d days pruned", gone, self.config.audit_keep_days
            )

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
        if self.token_rotator is not None:
            await self.token_rotator.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.roller is not None:
            await self.roller.stop()
        if self.reports is not None:
            await self.reports.stop()
        if self.publishing is not None:
            await self.publishing.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.http is not None:
            # Before the media plane goes: its viewers' Janus sessions, and their audit.
            await self.http.patrol.close_janus_viewers("the controller stopped")
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self.media_plane is not None:
            await self.media_plane.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.hub is not None:
            await self.hub.stop()
        if self.messages is not None:
            await self.messages.heartbeats.stop()
        if self.http is not None:
            await self.http.stop()
        if self._audit_syslog is not None:
            self._audit_syslog.stop()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (files it makes are its user's alone: umask 0077)."""
        restrict_umask()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()
