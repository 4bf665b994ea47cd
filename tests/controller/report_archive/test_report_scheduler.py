"""The report scheduler decides what is due by an injected clock: each month of the term a
day after it ends (in the term's time zone), the term after its last day; what storage
holds complete, written once due, is not written again (one written on demand before is);
a follower writes nothing; a failed report is counted and stays due while the others are
written."""

from __future__ import annotations

import pathlib
from datetime import UTC, date, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from quota_seed import lesson
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.db.models import Term
from controller.db.session import make_engine, migrate, sessions
from controller.report_archive.metrics import ReportArchiveCollector
from controller.report_archive.periods import period_of
from controller.report_archive.scheduler import ReportScheduler, generate
from controller.report_archive.store import (
    MANIFEST,
    list_archive,
    report_key,
    term_folder,
    term_of_folder,
)
from controller.storage.local import LocalStorage
from controller.timetable.setup import apply_setup


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _seeded(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    migrate(db_url)
    db: sessionmaker[Session] = sessions(make_engine(db_url))
    keys = ServerKeys.load_or_create(tmp_path)
    with db() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)  # term "spring": 2026-03-02 .. 2026-03-29, Asia/Shanghai
        lesson(s, date(2026, 3, 4))
    return db


def _due(reports: ReportScheduler) -> list[tuple[str, str]]:
    return [(p.term, p.period) for p in reports.due_now()]


async def test_what_is_due_by_the_clock_and_written_once(
    tmp_path: pathlib.Path, db_url: str
) -> None:
    db = _seeded(tmp_path, db_url)
    storage = LocalStorage(tmp_path / "storage")
    clock = Clock(datetime(2026, 3, 20, tzinfo=UTC))
    reports = ReportScheduler(db, storage, lambda: True, clock=clock)
    assert _due(reports) == []  # mid-term: nothing has ended
    # Written on demand while the month runs: kept, but written again once it is due.
    with db() as s:
        term = s.get(Term, "spring")
        assert term is not None
        march = period_of(term, "2026-03")
    assert generate(db, storage, march, clock()).complete
    assert _due(reports) == []
    clock.now = datetime(2026, 3, 30, 15, 0, tzinfo=UTC)  # 23:00 on the 30th in Beijing
    assert _due(reports) == []  # the term ended on the 29th: a day's grace
    clock.now = datetime(2026, 3, 30, 16, 30, tzinfo=UTC)  # 00:30 on the 31st in Beijing
    assert _due(reports) == [("spring", "2026-03"), ("spring", "term")]
    done = await reports.tick()
    assert [(a.term, a.period, a.complete) for a in done] == [
        ("spring", "2026-03", True),
        ("spring", "term", True),
    ]
    assert reports.written == 2 and reports.failures == 0
    assert _due(reports) == []
    assert await reports.tick() == []  # written once
    # A report whose manifest is missing (a run cut short) is due again.
    (storage.root / report_key("spring", "term", MANIFEST)).unlink()
    assert _due(reports) == [("spring", "term")]
    # Terms that ended long ago are not back-filled.
    clock.now = datetime(2027, 6, 1, tzinfo=UTC)
    assert _due(reports) == []


async def test_a_follower_writes_nothing_and_a_failure_is_counted(
    tmp_path: pathlib.Path, db_url: str
) -> None:
    db = _seeded(tmp_path, db_url)
    storage = LocalStorage(tmp_path / "storage")
    clock = Clock(datetime(2026, 4, 2, tzinfo=UTC))
    leads = [False]
    reports = ReportScheduler(db, storage, lambda: leads[0], clock=clock)
    assert await reports.tick() == []
    assert list_archive(storage) == []
    leads[0] = True
    # The month's folder is a file: its report cannot be stored; the term's still is.
    blocker = storage.root / "reports" / "spring" / "2026-03"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    done = await reports.tick()
    assert [(a.period, a.complete) for a in done] == [("term", True)]
    assert (reports.written, reports.failures) == (1, 1)
    registry = CollectorRegistry()
    registry.register(ReportArchiveCollector(reports))
    exposed = generate_latest(registry).decode()
    assert "classbridge_reports_written_total 1.0" in exposed
    assert "classbridge_report_failures_total 1.0" in exposed
    assert _due(reports) == [("spring", "2026-03")]
    blocker.unlink()
    assert [a.period for a in await reports.tick()] == ["2026-03"]


def test_a_term_id_storage_cannot_name_is_kept_in_hex() -> None:
    assert term_folder("2026-spring") == "2026-spring"
    folder = term_folder("2026春季")
    assert folder.startswith("x-") and term_of_folder(folder) == "2026春季"
    assert term_of_folder(term_folder("x-1")) == "x-1"  # a plain id that looks like hex
    with pytest.raises(ValueError, match="too long"):
        term_folder("学" * 30)
