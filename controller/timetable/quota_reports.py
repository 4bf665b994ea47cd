"""Term reports by school, teacher, subject and pairing (学校、教师、学科、结对报表), from the
quota engine's results, with a CSV that opens in Excel on a Chinese PC.

Schools are ranked against schools of the same level (学段: primary, junior…, set in the
set-up file), by the share of their quota figures met, then by lessons held; schools whose
level is not set are ranked together as one more group. The report says so
(``RANKING_NOTE``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from controller.analytics import report as st_report
from controller.analytics.report import StSummary
from controller.timetable.quota_engine import LessonFact, QuotaResult, TermQuotas
from controller.timetable.school_levels import level_label

VIEWS = ("school", "teacher", "subject", "pairing")
RANKING_NOTE = (
    "学校按学段分组排名，未设学段的学校另成一组 (schools are ranked within their level; those "
    "whose level is not set are ranked together as one group)"
)


@dataclass
class ReportEntry:
    """One school, teacher, subject or pairing: its lessons and its quota figures."""

    key: str
    name: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind → figure → n
    results: list[QuotaResult] = field(default_factory=list)
    rank: int | None = None  # schools: within their level
    level: str | None = None  # schools: their level's code ("" not set)
    reviews: list[float] = field(default_factory=list)  # reviewed lessons' mean scores
    st: StSummary = field(default_factory=StSummary)  # S-T analysis of its lessons

    @property
    def review_mean_pct(self) -> float | None:
        """The mean inspectors' score of its reviewed lessons, in % of the rubric."""
        return round(100 * sum(self.reviews) / len(self.reviews), 1) if self.reviews else None

    @property
    def met(self) -> int:
        """Quota figures met."""
        return sum(r.met for r in self.results)

    @property
    def held(self) -> int:
        """Lessons held, every kind."""
        return sum(c["held"] for c in self.counts.values())

    def to_json(self) -> dict[str, Any]:
        """The entry as the API sends it."""
        return {
            "key": self.key,
            "name": self.name,
            "rank": self.rank,
            "level": self.level,
            "met": self.met,
            "quotas": len(self.results),
            "counts": self.counts,
            "results": [result_json(r) for r in self.results],
            "reviewed": len(self.reviews),
            "review_mean_pct": self.review_mean_pct,
            "st": self.st.document(),
        }


def result_json(r: QuotaResult) -> dict[str, Any]:
    """One quota figure for the API."""
    return {
        "quota": r.quota.id,
        "label_zh": r.quota.label_zh,
        "label_en": r.quota.label_en,
        "scope": r.quota.scope,
        "instance": r.instance,
        "subject": r.subject,
        "period": r.period.label,
        "first": r.period.first.isoformat(),
        "last": r.period.last.isoformat(),
        "held": r.held,
        "required": r.required,
        "met": r.met,
    }


def _keys(f: LessonFact, by: str) -> tuple[str, ...]:
    if by == "school":
        return tuple(f.schools)
    if by == "teacher":
        return f.teachers  # the lead teacher and the rooms' assistant teachers
    if by == "subject":
        return (f.subject,)
    return tuple(f.pairings)


def _result_keys(tq: TermQuotas, r: QuotaResult, by: str) -> tuple[str, ...]:
    """Which entries of view ``by`` a quota figure belongs to."""
    scope = r.quota.scope
    if by == scope:
        return (r.instance,)
    if by == "school" and scope == "classroom":
        return (tq.classroom_school.get(r.instance, ""),)
    if by == "subject" and r.subject:
        return (r.subject,)
    return ()


def build_view(tq: TermQuotas, by: str) -> list[ReportEntry]:
    """The entries of one view; schools ranked (1 = best)."""
    if by not in VIEWS:
        raise ValueError(f"unknown report view {by!r}; use one of {', '.join(VIEWS)}")
    names = {"school": tq.school_names, "teacher": tq.teacher_names}.get(by, {})
    entries: dict[str, ReportEntry] = {}

    def entry(key: str) -> ReportEntry:
        if key not in entries:
            entries[key] = ReportEntry(key, names.get(key, key))
        return entries[key]

    for f in tq.lessons:
        for key in _keys(f, by):
            c = entry(key).counts.setdefault(f.kind, {"scheduled": 0, "held": 0, "recorded": 0})
            c["scheduled"] += 1
            c["held"] += f.held
            c["recorded"] += f.recorded
            if f.review is not None:
                entry(key).reviews.append(f.review)
            if f.st is not None:
                entry(key).st.add(f.st)
    for r in tq.results:
        for key in _result_keys(tq, r, by):
            if key:
                entry(key).results.append(r)
    out = sorted(entries.values(), key=lambda e: e.key)
    if by == "school":
        # Each level its own ranking; the levels in a fixed order, "not set" last.
        for e in out:
            e.level = tq.school_levels.get(e.key, "")
        ranked = sorted(
            out,
            key=lambda e: (
                not e.level,
                e.level or "",
                -(e.met / len(e.results)) if e.results else 0.0,
                -e.held,
                e.key,
            ),
        )
        for level in {e.level for e in ranked}:
            for i, e in enumerate((e for e in ranked if e.level == level), 1):
                e.rank = i
        out = ranked
    return out


HEADERS = {
    "school": "学校 school",
    "teacher": "教师 teacher",
    "subject": "学科 subject",
    "pairing": "结对 pairing",
}


def view_csv(entries: list[ReportEntry], by: str) -> str:
    """One row per entry and quota figure, then one per entry and kind; headers in Chinese
    with English beside. Encode with ``utf-8-sig`` (a BOM) for Excel on a Chinese PC."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            HEADERS[by],
            "名称 name",
            "排名 rank",
            "学段 level",
            "指标 quota",
            "指标名称 label",
            "范围 scope",
            "对象 instance",
            "学科 subject",
            "期间 period",
            "已开 held",
            "要求 required",
            "达标 met",
        ]
    )
    for e in entries:
        for r in e.results:
            w.writerow(
                [
                    e.key,
                    e.name,
                    "" if e.rank is None else e.rank,
                    "" if e.level is None else level_label(e.level),
                    r.quota.id,
                    r.quota.label,
                    r.quota.scope,
                    r.instance,
                    r.subject,
                    r.period.label,
                    r.held,
                    r.required,
                    "是 yes" if r.met else "否 no",
                ]
            )
    w.writerow([])
    w.writerow(
        [HEADERS[by], "名称 name", "课型 kind", "已排 scheduled", "已开 held", "已录 recorded"]
    )
    for e in entries:
        for kind, c in sorted(e.counts.items()):
            w.writerow([e.key, e.name, kind, c["scheduled"], c["held"], c["recorded"]])
    w.writerow([])
    w.writerow([HEADERS[by], "名称 name", "评课节数 reviewed", "评课均分% review mean %"])
    for e in entries:
        if e.reviews:
            w.writerow([e.key, e.name, len(e.reviews), e.review_mean_pct])
    w.writerow([])
    w.writerow([HEADERS[by], "名称 name", *st_report.CSV_HEADER])
    for e in entries:
        if e.st.lessons:
            w.writerow([e.key, e.name, *st_report.csv_cells(e.st)])
    return buf.getvalue()


def csv_bytes(text: str) -> bytes:
    """UTF-8 with a BOM: Excel on a Chinese PC otherwise reads the file as GBK."""
    return text.encode("utf-8-sig")


def all_views(tq: TermQuotas) -> dict[str, list[ReportEntry]]:
    """Every view of one evaluation: what a term's scheduled report run writes."""
    return {by: build_view(tq, by) for by in VIEWS}
