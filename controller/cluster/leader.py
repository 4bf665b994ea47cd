"""One orchestrator leader among the controllers that share a PostgreSQL database.

The leader is the controller that holds a session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own: a direct one, since a session lock
does not survive a transaction-pooling proxy. The others try again every ``retry_s``.
PostgreSQL releases the lock when the leader's session ends, so a leader that is killed,
or whose machine or network goes away (keepalives and ``tcp_user_timeout`` end the
session within seconds), is replaced at the next try of another controller.

The leader checks its connection at the same pace: once it fails, it stops orchestrating
before anyone else can have taken the lock, so two controllers never command lessons at
once. On SQLite (one controller) this controller is always the leader.

Who leads is visible from any controller: the lock holder's ``application_name`` in
``pg_stat_activity`` names its node. No table is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg

from controller.cluster.conninfo import connect_kwargs, libpq_conninfo
from controller.db.urls import hide_password, is_postgresql

log = logging.getLogger(__name__)

# One 64-bit key per database ("cborches"); the migrations hold another.
ORCHESTRATOR_LOCK = 0x63626F7263686573
RETRY_S = 1.0
APP_PREFIX = "classbridge-leader "
_HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %(hi)s::oid AND l.objid = %(lo)s::oid
"""
_HELD_HERE = _HOLDER.replace("l.granted", "l.granted AND l.pid = pg_backend_pid()")

Transition = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class LeaderStatus:
    """What /healthz and the logs say about leadership."""

    node: str
    engine: str
    leader: bool
    leader_node: str | None  # who holds the lock, as far as this controller can see
    leader_since: float | None  # wall-clock time this controller became leader
    takeovers: int  # how often this controller became leader
    losses: int  # how often it stopped being leader while running
    # Leading without the database (unreachable since this wall-clock time): lessons under
    # way keep their relays; nothing new starts or ends until it is back. None: healthy.
    degraded_since: float | None = None
    degraded_times: int = 0  # how often the leader lost the database and carried on

    def as_dict(self) -> dict[str, object]:
        """JSON for the health route."""
        return {
            "node": self.node,
            "engine": self.engine,
            "leader": self.leader,
            "leader_node": self.leader_node,
            "leader_since": self.leader_since,
            "takeovers": self.takeovers,
            "losses": self.losses,
            "degraded_since": self.degraded_since,
        }


class Leadership:
    """Runs ``on_gain`` when this controller becomes leader and ``on_loss`` when it stops."""

    def __init__(
        self,
        url: str | None,
        node: str,
        on_gain: Transition,
        on_loss: Transition,
        retry_s: float = RETRY_S,
    ) -> None:
        self._url = url if url is not None and is_postgresql(url) else None
        self.node = node
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._retry_s = retry_s
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._leader = False
        self._since: float | None = None
        self._holder: str | None = None
        self._takeovers = 0
        self._losses = 0
        self._degraded_since: float | None = None
        self._degraded_times = 0

    @property
    def is_leader(self) -> bool:
        """Whether this controller runs the orchestrator now."""
        return self._leader

    def status(self) -> LeaderStatus:
        """Leadership as this controller sees it."""
        return LeaderStatus(
            node=self.node,
            engine="postgresql" if self._url else "sqlite",
            leader=self._leader,
            leader_node=self.node if self._leader else self._holder,
            leader_since=self._since,
            takeovers=self._takeovers,
            losses=self._losses,
            degraded_since=self._degraded_since,
            degraded_times=self._degraded_times,
        )

    @property
    def degraded(self) -> bool:
        """Whether this controller leads without its database (see ``_contend``)."""
        return self._degraded_since is not None

    async def start(self) -> None:
        """SQLite: lead at once. PostgreSQL: contend for the lock in the background."""
        if self._url is None:
            await self._gain()
            return
        self._task = asyncio.create_task(self._contend(), name="leadership")

    async def stop(self) -> None:
        """Stop orchestrating (if leading) and release the lock by closing the session."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._leader:
            await self._lose("controller stopping")
        await asyncio.to_thread(self._close)

    async def _contend(self) -> None:
        """Hold the lock, or try for it, every ``retry_s``.

        The database lost while leading (its connection fails, not the lock taken away):
        the leader carries on *degraded*. Its orchestrator and the relays of the lessons
        under way keep running, so their media flows and agents keep recording; passes
        that need the database fail, are counted and are tried again. Each try reconnects
        and asks for the lock again: granted, the leader recovers by itself; held by
        another controller (it took over meanwhile), this one stops orchestrating.
        """
        assert self._url is not None
        while True:
            try:
                if self._leader and self._degraded_since is not None:
                    got, holder = await asyncio.to_thread(self._try_lock)
                    if got:
                        self._recovered()
                    elif holder != self.node:  # our own old session may linger a while
                        self._holder = holder
                        self._degraded_since = None
                        await self._lose(
                            f"the database is back and {holder or 'another controller'} leads"
                        )
                elif self._leader:
                    await asyncio.to_thread(self._still_held)
                else:
                    got, holder = await asyncio.to_thread(self._try_lock)
                    self._holder = holder
                    if self._degraded_since is not None:
                        self._recovered()
                    if got:
                        await self._gain()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, LostLock) as err:
                if _unreachable(err) and (self._leader or self._degraded_since is None):
                    self._degrade(err)
                elif self._leader:
                    await self._lose(f"{type(err).__name__}: {err}")
                else:
                    log.debug("leadership: database still unreachable (%s)", err)
                await asyncio.to_thread(self._close)
            except Exception:
                log.exception("leadership: a try failed; carrying on")
            await asyncio.sleep(self._retry_s)

    def _degrade(self, err: BaseException) -> None:
        if self._degraded_since is not None:
            return
        self._degraded_since = time.time()
        self._degraded_times += 1
        if not self._leader:
            log.error(
                "leadership: database %s unreachable (%s); node %s is DEGRADED (its API "
                "and agents' registrations fail) and tries again every %.0f s",
                hide_password(self._url or ""),
                err,
                self.node,
                self._retry_s,
            )
        else:
            log.error(
                "leadership: database %s unreachable (%s); node %s carries on DEGRADED: "
                "lessons under way keep their media and recordings, nothing starts or ends "
                "until the database is back; trying again every %.0f s",
                hide_password(self._url or ""),
                err,
                self.node,
                self._retry_s,
            )

    def _recovered(self) -> None:
        assert self._degraded_since is not None
        log.warning(
            "leadership: database back after %.0f s; node %s is no longer degraded%s",
            time.time() - self._degraded_since,
            self.node,
            " and leads again" if self._leader else "",
        )
        self._degraded_since = None

    async def _gain(self) -> None:
        self._leader = True
        self._since = time.time()
        self._takeovers += 1
        log.warning("leadership: node %s is the orchestrator leader now", self.node)
        try:
            await self._on_gain()
        except Exception:
            # Not leading while holding the lock would stall every lesson: let it go.
            log.exception("leadership: starting the orchestrator failed; giving the lock up")
            self._leader = False
            self._since = None
            await asyncio.to_thread(self._close)

    async def _lose(self, why: str) -> None:
        self._leader = False
        self._degraded_since = None
        self._since = None
        self._losses += 1
        log.error("leadership: node %s stops orchestrating: %s", self.node, why)
        try:
            await self._on_loss()
        except Exception:
            log.exception("leadership: stopping the orchestrator failed; carrying on")

    # -- the dedicated connection (worker thread) ---------------------------------------

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            assert self._url is not None
            self._conn = psycopg.connect(
                libpq_conninfo(self._url),
                **connect_kwargs(APP_PREFIX + self.node),  # type: ignore[arg-type]
            )
        return self._conn

    def _try_lock(self) -> tuple[bool, str | None]:
        conn = self._connection()
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ORCHESTRATOR_LOCK,)).fetchone()
        if row is not None and row[0] is True:
            return True, self.node
        return False, self._holder_name(conn)

    def _holder_name(self, conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
        row = conn.execute(_HOLDER, _key_halves()).fetchone()
        if row is None:
            return None
        name = str(row[0])
        return name[len(APP_PREFIX) :] if name.startswith(APP_PREFIX) else name

    def _still_held(self) -> None:
        if self._conn is None or self._conn.closed:
            raise LockConnectionLost("the connection holding the lock is closed")
        if self._conn.execute(_HELD_HERE, _key_halves()).fetchone() is None:
            raise LostLock("this session no longer holds the orchestrator lock")

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self._conn.close()
        self._conn = None


class LostLock(RuntimeError):
    """The leader's session no longer holds the orchestrator lock."""


class LockConnectionLost(LostLock):
    """The connection that held the lock is gone (the database unreachable)."""


def _unreachable(err: BaseException) -> bool:
    """Whether ``err`` means the database could not be reached, not that another
    controller took the lock."""
    return isinstance(
        err, psycopg.OperationalError | psycopg.InterfaceError | OSError | LockConnectionLost
    )


def _key_halves() -> dict[str, int]:
    """The lock key as pg_locks shows a bigint advisory key: two 32-bit oids."""
    return {"hi": ORCHESTRATOR_LOCK >> 32, "lo": ORCHESTRATOR_LOCK & 0xFFFFFFFF}
