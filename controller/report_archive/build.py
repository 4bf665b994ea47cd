"""A report's content: the quota engine's views for one month or the whole term, as the
printable HTML (``render``) and one CSV per view (UTF-8 with a BOM, for Excel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from controller.report_archive.periods import TERM, ReportPeriod
from controller.report_archive.render import report_html
from controller.timetable.quota_engine import TermQuotas, evaluate_term
from controller.timetable.quota_reports import VIEWS, ReportEntry, all_views, csv_bytes, view_csv

HTML_NAME = "report.html"
CSV_NAMES = {by: f"{by}.csv" for by in VIEWS}
FILE_NAMES = (HTML_NAME, *CSV_NAMES.values())


@dataclass
class ReportContent:
    """What one report run computed, before it is written."""

    period: ReportPeriod
    name: str  # the term's name
    generated_at: datetime
    views: dict[str, list[ReportEntry]]
    lessons: int
    kinds: dict[str, tuple[int, int]]  # kind → (scheduled, held) in the period

    def files(self) -> dict[str, bytes]:
        """File name → bytes: the HTML, then a CSV per view."""
        out = {HTML_NAME: report_html(self).encode("utf-8")}
        for by, name in CSV_NAMES.items():
            out[name] = csv_bytes(view_csv(self.views[by], by))
        return out


def _within(tq: TermQuotas, p: ReportPeriod) -> None:
    """Keep the period's lessons (a yearly quota reads the whole school year's) and, for a
    month, the week and month figures that overlap it, with the term and year figures as
    they stand at its end."""
    tq.lessons = [f for f in tq.lessons if p.first <= f.day <= p.last]
    tq.results = [
        r
        for r in tq.results
        if r.quota.period not in ("week", "month")
        or (r.period.first <= p.last and r.period.last >= p.first)
    ]


def build_report(db: Session, p: ReportPeriod, generated_at: datetime) -> ReportContent:
    """Evaluate the term's quotas for ``p`` (a month: counted up to its last day)."""
    tq = evaluate_term(db, p.term, until=None if p.period == TERM else p.last)
    _within(tq, p)
    kinds: dict[str, tuple[int, int]] = {}
    for f in tq.lessons:
        scheduled, held = kinds.get(f.kind, (0, 0))
        kinds[f.kind] = (scheduled + 1, held + f.held)
    return ReportContent(
        period=p,
        name=tq.term.name,
        generated_at=generated_at,
        views=all_views(tq),
        lessons=len(tq.lessons),
        kinds=dict(sorted(kinds.items())),
    )
