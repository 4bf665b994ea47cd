"""Which reports a term has, and which are due: one per calendar month it overlaps (clipped
to the term) and one for the whole term, each due once its last day is over in the term's
own time zone, plus GRACE_DAYS for the rooms' late uploads (a lesson counts as held when
its receivers' recordings arrived)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from controller.common.errors import InvalidRequest
from controller.db.models import Term

TERM = "term"
GRACE_DAYS = 1
# Terms that ended longer ago than this are not back-filled (a fresh storage would
# otherwise rewrite every old term's reports).
BACKFILL_DAYS = 400
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class ReportPeriod:
    """One report of a term: a month ("2026-03") or the term itself ("term")."""

    term: str
    period: str
    first: date
    last: date

    @property
    def kind(self) -> str:
        """ "month" or "term"."""
        return TERM if self.period == TERM else "month"


def _month_end(first: date) -> date:
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def periods_of(term: Term) -> list[ReportPeriod]:
    """Every report of ``term``: its months in order, then the term."""
    out = []
    day = date(term.start_date.year, term.start_date.month, 1)
    while day <= term.end_date:
        last = _month_end(day)
        out.append(
            ReportPeriod(
                term.id,
                f"{day.year}-{day.month:02d}",
                max(day, term.start_date),
                min(last, term.end_date),
            )
        )
        day = last + timedelta(days=1)
    out.append(ReportPeriod(term.id, TERM, term.start_date, term.end_date))
    return out


def period_of(term: Term, period: str) -> ReportPeriod:
    """The report ``period`` ("term", or a month "YYYY-MM" the term overlaps) of ``term``."""
    for p in periods_of(term):
        if p.period == period:
            return p
    months = [p.period for p in periods_of(term) if p.kind == "month"]
    shape = "" if period == TERM or _MONTH.match(period) else " (write YYYY-MM or term)"
    raise InvalidRequest(
        f"period {period[:20]!r}{shape}: term {term.id!r} has the months "
        f"{', '.join(months)} and 'term'"
    )


def local_today(term: Term, now: datetime) -> date:
    """The day it is in the term's time zone at ``now`` (aware)."""
    return now.astimezone(ZoneInfo(term.timezone)).date()


def is_final(term: Term, p: ReportPeriod, generated_at: datetime) -> bool:
    """Whether a report written at ``generated_at`` is its period's last word: written once
    it was due (one written on demand while the month ran is written again when due)."""
    return p.last + timedelta(days=GRACE_DAYS) < local_today(term, generated_at)


def due(terms: Iterable[Term], now: datetime) -> list[ReportPeriod]:
    """The reports whose period is over (with the grace), of terms that ended at most
    BACKFILL_DAYS ago; oldest first. The scheduler leaves out those already kept."""
    out = []
    for term in terms:
        today = local_today(term, now)
        if term.end_date < today - timedelta(days=BACKFILL_DAYS):
            continue
        out += [p for p in periods_of(term) if p.last + timedelta(days=GRACE_DAYS) < today]
    return sorted(out, key=lambda p: (p.last, p.kind == TERM, p.term))
