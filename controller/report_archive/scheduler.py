"""The report scheduler: on the leader only (one controller writes a county's reports),
it looks every ``tick_s`` for the months and terms whose reports are due (``periods.due``)
and writes them, one at a time, logging and counting a failure and carrying on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Term
from controller.report_archive.build import build_report
from controller.report_archive.periods import ReportPeriod, due, is_final
from controller.report_archive.store import Archived, generated_at, list_archive, write_report
from controller.storage.backend import StorageBackend

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The time now (UTC), the scheduler's clock unless one is given."""
    return datetime.now(UTC)


def generate(
    sessions: sessionmaker[Session],
    storage: StorageBackend,
    p: ReportPeriod,
    now: datetime,
) -> Archived:
    """Compute and store one report (blocking: a worker thread's job)."""
    with sessions() as db:
        content = build_report(db, p, now)
    return write_report(storage, content)


class ReportScheduler:
    """Writes due reports while ``leads()``; ``tick`` is one pass of its loop."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: StorageBackend,
        leads: Callable[[], bool],
        tick_s: float = 600.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._leads = leads
        self._tick_s = tick_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._final: set[tuple[str, str]] = set()  # reports known written once due
        self.written = 0
        self.failures = 0

    def due_now(self) -> list[ReportPeriod]:
        """The reports due at the clock's time that storage does not hold complete, or
        holds as written before they were due (on demand while the month ran)."""
        with self._sessions() as db:
            terms = {t.id: t for t in db.scalars(select(Term))}
        over = due(terms.values(), self._clock())
        if not over:
            return []
        held = {(a.term, a.period) for a in list_archive(self._storage) if a.complete}
        out = []
        for p in over:
            key = (p.term, p.period)
            if key in held and key not in self._final:
                at = generated_at(self._storage, p.term, p.period)
                if at is not None and is_final(terms[p.term], p, at):
                    self._final.add(key)  # read once: a final report stays final
            if key not in held or key not in self._final:
                out.append(p)
        return out

    def _write(self, p: ReportPeriod) -> Archived | None:
        """Write one report; a failure is logged and counted, and the report stays due."""
        try:
            done = generate(self._sessions, self._storage, p, self._clock())
        except Exception:
            self.failures += 1
            log.exception("report %s %s failed; trying again next pass", p.term, p.period)
            return None
        self.written += 1
        log.info("report %s %s written", p.term, p.period)
        return done

    async def tick(self) -> list[Archived]:
        """One pass of the loop, if this controller leads: each due report in its own
        worker-thread job, so stopping waits for one report at most."""
        if not self._leads():
            return []
        done = []
        for p in await asyncio.to_thread(self.due_now):
            if not self._leads():  # leadership went to another controller meanwhile
                break
            if (a := await asyncio.to_thread(self._write, p)) is not None:
                done.append(a)
        return done

    async def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._loop(), name="report-archive")

    async def stop(self) -> None:
        """Stop the loop (a report being written finishes in its thread)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # listing storage or reading the terms failed
                self.failures += 1
                log.exception("report archive pass failed; trying again next tick")
            await asyncio.sleep(self._tick_s)
