"""Term reports against the pairing quotas: scheduled, held and recorded, by kind and subject.

"Held" is measured, not declared: media flowed between the sites for at least 80 % of the
scheduled time — read from what the receiving classrooms recorded of the lead (the
coverage of their received camera track in the recording catalogue). "Recorded" means
the lead's recording reached storage. Quality per lesson (latency from the lesson report)
goes in too.
"""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import JSON, Select, literal, select
from sqlalchemy.orm import Session

from controller.auth.scope import COUNTY, Scope
from controller.db.models import Classroom, Lesson, LessonReceiver, Pairing, RecordingManifest
from controller.db.session import as_utc

HELD_SHARE = 0.8


# The Chinese and English labels of the checks below, for the console and the page.
CHECK_LABELS: dict[str, tuple[str, str]] = {
    "synchronous held": ("同步课堂总数", "synchronous lessons held"),
    "research held": ("教师网络研修", "teacher online research sessions"),
    "delivery held": ("专递课堂", "delivery lessons"),
    "master-teacher held": ("名师课堂观摩", "master-teacher observation lessons"),
}


def check_label(name: str) -> tuple[str, str]:
    """A check's (Chinese, English) label."""
    if name.startswith("subjects with"):
        need = name.split("≥", 1)[-1].split(" ", 1)[0]
        return (f"同步课堂学科数（每科至少{need}节）", name)
    return CHECK_LABELS.get(name, (name, name))


@dataclass(frozen=True)
class Quotas:
    """A paired school's semester quotas (county pairing plan by default)."""

    synchronous_subjects: int = 2
    synchronous_per_subject: int = 15
    synchronous_total: int = 30
    research: int = 20
    delivery: int = 12  # where the pairing chose delivery
    master_teacher: int = 12  # where the pairing chose master-teacher observation


@dataclass
class LessonOutcome:
    """One lesson's figures for the report."""

    id: str
    kind: str
    subject: str
    start: str
    lead: str
    receivers: list[str]
    held: bool
    held_share: float | None
    recorded: bool
    latency_p50_ms: float | None


def media_share(
    lead: str, receivers: list[str], coverage: dict[str, dict[str, Any]]
) -> float | None:
    """The share of the scheduled time media flowed: the least any receiver recorded of
    the lead's camera (None until every receiver's manifest is in); with no receiver, the
    lead's own recording. ``coverage``: classroom → its manifest's coverage."""
    if not receivers:  # a broadcast with no classroom receiving: the lead's own recording
        own = coverage.get(lead)
        return float(own.get("ratio", 0.0)) if own is not None else None
    shares = []
    for room in receivers:
        got = coverage.get(room)
        if got is None:
            return None
        tracks: list[dict[str, Any]] = list(got.get("tracks", []))
        shares.append(
            max(
                (
                    float(t["ratio"])
                    for t in tracks
                    if t.get("direction") == "recv" and t.get("kind") == "video"
                ),
                default=0.0,
            )
        )
    return min(shares)


def outcome(
    lesson: Lesson | LessonRow, coverage: dict[str, dict[str, Any]], receivers: list[str]
) -> LessonOutcome:
    """Measure one lesson from its recordings (classroom → its manifest's coverage)."""
    share = media_share(lesson.lead_classroom_id, receivers, coverage)
    latency = None
    for rep in (lesson.reports or {}).values():
        for track in rep.get("tracks", []) if isinstance(rep, dict) else []:
            if track.get("latency_p50_ms") is not None:
                latency = float(track["latency_p50_ms"])
    return LessonOutcome(
        id=lesson.id,
        kind=lesson.kind,
        subject=lesson.subject,
        start=as_utc(lesson.start_at).isoformat(),
        lead=lesson.lead_classroom_id,
        receivers=receivers,
        held=share is not None and share >= HELD_SHARE,
        held_share=share,
        recorded=lesson.lead_classroom_id in coverage,
        latency_p50_ms=latency,
    )


class LessonRow(NamedTuple):
    """The columns of a lesson the reports read (plain rows: a term is 10,000 lessons)."""

    id: str
    kind: str
    subject: str
    start_at: datetime
    lead_classroom_id: str
    pairing_id: str | None
    teacher_id: str | None
    reports: dict[str, Any] | None


def lessons_near(start: date, end: date) -> Select[Any]:
    """The ids of lessons (not cancelled) starting from a day before ``start`` to a day
    after ``end``: the margin for days counted in a local time zone."""
    day = timedelta(days=1)
    first = start - day if start > date.min else start
    after = end + 2 * day if end < date.max - 2 * day else date.max
    return (
        select(Lesson.id)
        .where(Lesson.state != "cancelled")
        .where(Lesson.start_at >= first)
        .where(Lesson.start_at < after)
    )


def lesson_rows(
    db: Session, start: date, end: date, with_reports: bool = True
) -> tuple[list[LessonRow], dict[str, list[str]], dict[str, dict[str, dict[str, Any]]]]:
    """The lessons (not cancelled) whose UTC day is in [start, end], each one's receivers,
    and each one's manifests' coverage by classroom: three Core queries (no ORM objects).
    Without ``with_reports`` the agents' lesson reports are not read (``reports`` {})."""
    ids = lessons_near(start, end)  # with a day's margin; the exact days in Python
    near = ids.with_only_columns(
        Lesson.id,
        Lesson.kind,
        Lesson.subject,
        Lesson.start_at,
        Lesson.lead_classroom_id,
        Lesson.pairing_id,
        Lesson.teacher_id,
        Lesson.reports if with_reports else literal(None, JSON).label("reports"),
    )
    conn = db.connection()
    rows = [
        LessonRow._make(r)
        for r in conn.execute(near.order_by(Lesson.start_at, Lesson.id))
        if start <= as_utc(r.start_at).date() <= end
    ]
    receivers: dict[str, list[str]] = defaultdict(list)
    for lid, cid in conn.execute(
        select(LessonReceiver.lesson_id, LessonReceiver.classroom_id).where(
            LessonReceiver.lesson_id.in_(ids)
        )
    ):
        receivers[lid].append(cid)
    coverage: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for lid, cid, cov in conn.execute(
        select(
            RecordingManifest.lesson_id, RecordingManifest.classroom_id, RecordingManifest.coverage
        ).where(RecordingManifest.lesson_id.in_(ids))
    ):
        coverage[lid][cid] = cov
    return rows, receivers, coverage


@dataclass
class PairingReport:
    """One pairing's term against its quotas."""

    pairing: str
    schools: list[str]
    forms: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind → figure → n
    subjects: dict[str, int] = field(default_factory=dict)  # synchronous held per subject
    checks: list[tuple[str, int, int, bool]] = field(default_factory=list)
    lessons: list[LessonOutcome] = field(default_factory=list)

    @property
    def met(self) -> bool:
        """Every quota met."""
        return all(ok for *_, ok in self.checks)


def term_report(
    db: Session, start: date, end: date, quotas: Quotas | None = None, scope: Scope = COUNTY
) -> list[PairingReport]:
    """Every pairing's report over [start, end]; with a school ``scope``, the pairings
    that school is part of (whole: the quotas are the pairing's)."""
    quotas = quotas or Quotas()
    school_of = {c.id: c.school for c in db.scalars(select(Classroom)).all()}
    in_range, receivers, coverage = lesson_rows(db, start, end)
    out = []
    pairings = db.scalars(select(Pairing).order_by(Pairing.id)).all()
    members = {p.id: {p.supporting_school_id, *p.supported_school_ids} for p in pairings}
    by_school: dict[str | None, list[str]] = defaultdict(list)
    for pid, schools_of_pairing in members.items():
        for school in schools_of_pairing:
            by_school[school].append(pid)
    # One pass: a lesson is its pairing's, or (none named) that of every pairing holding
    # its lead's school and one of its receivers' schools.
    of_pairing: dict[str, list[LessonRow]] = defaultdict(list)
    for lesson in in_range:
        if lesson.pairing_id is not None:
            of_pairing[lesson.pairing_id].append(lesson)
            continue
        received = {school_of.get(r) for r in receivers.get(lesson.id, [])}
        for pid in by_school.get(school_of.get(lesson.lead_classroom_id), []):
            if received & members[pid]:
                of_pairing[pid].append(lesson)
    for pairing in pairings:
        schools = [pairing.supporting_school_id, *pairing.supported_school_ids]
        if not scope.sees_any_school(schools):
            continue
        lessons = of_pairing.get(pairing.id, [])
        rep = PairingReport(pairing.id, schools, list(pairing.forms))
        for lesson in lessons:
            o = outcome(lesson, coverage.get(lesson.id, {}), receivers.get(lesson.id, []))
            rep.lessons.append(o)
            c = rep.counts.setdefault(o.kind, {"scheduled": 0, "held": 0, "recorded": 0})
            c["scheduled"] += 1
            c["held"] += o.held
            c["recorded"] += o.recorded
            if o.kind == "synchronous" and o.held:
                rep.subjects[o.subject or "(none)"] = rep.subjects.get(o.subject or "(none)", 0) + 1
        held = {k: v["held"] for k, v in rep.counts.items()}
        rich = [s for s, n in rep.subjects.items() if n >= quotas.synchronous_per_subject]
        rep.checks = [
            (
                "synchronous held",
                held.get("synchronous", 0),
                quotas.synchronous_total,
                held.get("synchronous", 0) >= quotas.synchronous_total,
            ),
            (
                f"subjects with ≥{quotas.synchronous_per_subject} synchronous",
                len(rich),
                quotas.synchronous_subjects,
                len(rich) >= quotas.synchronous_subjects,
            ),
            (
                "research held",
                held.get("research", 0),
                quotas.research,
                held.get("research", 0) >= quotas.research,
            ),
        ]
        if "delivery" in pairing.forms:
            n = held.get("delivery", 0)
            rep.checks.append(("delivery held", n, quotas.delivery, n >= quotas.delivery))
        if "master_teacher" in pairing.forms:
            n = held.get("master_teacher", 0)
            rep.checks.append(
                ("master-teacher held", n, quotas.master_teacher, n >= quotas.master_teacher)
            )
        out.append(rep)
    return out


def report_csv(reports: list[PairingReport]) -> str:
    """One row per pairing and quota, then one per lesson."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["pairing", "quota", "held", "required", "met"])
    for r in reports:
        for name, n, need, ok in r.checks:
            w.writerow([r.pairing, name, n, need, "yes" if ok else "no"])
    w.writerow([])
    w.writerow(
        [
            "pairing",
            "lesson",
            "kind",
            "subject",
            "start",
            "lead",
            "receivers",
            "held",
            "media share",
            "recorded",
            "latency p50 ms",
        ]
    )
    for r in reports:
        for o in r.lessons:
            w.writerow(
                [
                    r.pairing,
                    o.id,
                    o.kind,
                    o.subject,
                    o.start,
                    o.lead,
                    ";".join(o.receivers),
                    "yes" if o.held else "no",
                    "" if o.held_share is None else f"{o.held_share:.3f}",
                    "yes" if o.recorded else "no",
                    "" if o.latency_p50_ms is None else f"{o.latency_p50_ms:.1f}",
                ]
            )
    return buf.getvalue()


def report_html(reports: list[PairingReport], title: str) -> str:
    """A printable page: one bar chart (SVG) and table per pairing."""
    parts = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 8px}.no{color:#b00}.yes{color:#070}"
        "@media print{section{page-break-after:always}}</style>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for r in reports:
        parts.append(
            f"<section><h2>{html.escape(r.pairing)}: {', '.join(map(html.escape, r.schools))}</h2>"
        )
        bars = []
        for i, (name, n, need, ok) in enumerate(r.checks):
            width = 300 * min(n / need, 1.5) if need else 0
            goal = 300
            zh, en = check_label(name)
            bars.append(
                f'<text x="0" y="{i * 28 + 16}">{html.escape(zh)} {html.escape(en)}</text>'
                f'<rect x="380" y="{i * 28 + 4}" width="{width:.0f}" height="16" '
                f'fill="{"#3a3" if ok else "#c33"}"/>'
                f'<line x1="{380 + goal}" x2="{380 + goal}" y1="{i * 28}" '
                f'y2="{i * 28 + 24}" stroke="#000"/>'
                f'<text x="{390 + max(width, goal)}" y="{i * 28 + 16}">{n} / {need}</text>'
            )
        parts.append(
            f'<svg width="870" height="{len(r.checks) * 28 + 8}" role="img">{"".join(bars)}</svg>'
        )
        parts.append(
            "<table><tr><th>kind</th><th>scheduled</th><th>held</th><th>recorded</th></tr>"
        )
        for kind, c in sorted(r.counts.items()):
            parts.append(
                f"<tr><td>{html.escape(kind)}</td><td>{c['scheduled']}</td>"
                f"<td>{c['held']}</td><td>{c['recorded']}</td></tr>"
            )
        parts.append("</table></section>")
    return "\n".join(parts)
