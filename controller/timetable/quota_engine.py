"""The quota engine: every quota a term declares, for every scope instance and period.

A lesson counts as held when media flowed (``reports.media_share``, as the pairing
report: the receivers recorded at least 80 % of the lead's camera), as recorded when a
stitched recording of its lead classroom exists, and as published (a quality recorded
lesson, 优质课例) when one of its recordings is in the resource library and that recording
still exists. All of a term's
lessons, recordings and manifests are read in a handful of queries, then counted in
memory: one pass over the lessons per quota.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.analytics.report import StFigures, load_figures
from controller.auth.scope import COUNTY, Scope
from controller.common.errors import NotFound
from controller.db.models import (
    Classroom,
    LessonReceiver,
    LessonScore,
    Pairing,
    PublishedRecording,
    Recording,
    School,
    Teacher,
    Term,
)
from controller.db.session import as_utc
from controller.delivery.store import HELD_SHARE as PLAYED_HELD
from controller.delivery.store import played_shares
from controller.timetable.quotas import ANY, Quota, stored_quotas
from controller.timetable.reports import HELD_SHARE, lesson_rows, lessons_near, media_share
from controller.timetable.setup import term_calendar

NO_SUBJECT = "（未填学科 no subject）"
NEWLY_PAIRED_DAYS = 365  # a school whose first pairing began within a year of the term's end


@dataclass(frozen=True)
class Window:
    """One period a quota is counted over: its label and its first and last days."""

    label: str
    first: date
    last: date


@dataclass
class LessonFact:
    """What the engine needs of one lesson, read once."""

    id: str
    kind: str
    subject: str
    day: date
    teacher: str | None
    classrooms: tuple[str, ...]  # lead first
    schools: frozenset[str]
    pairings: frozenset[str]
    cross_school: bool
    held: bool
    recorded: bool
    published: bool
    review: float | None = None  # the mean of inspectors' scores, as a share of the points
    assistants: tuple[str, ...] = ()  # receiving rooms' assistant teachers (辅导教师)
    st: StFigures | None = None  # the S-T analysis (课堂分析), when the agents sent timelines

    @property
    def teachers(self) -> tuple[str, ...]:
        """Everyone who taught it: the lead teacher, then the rooms' assistants."""
        return tuple(dict.fromkeys(t for t in (self.teacher, *self.assistants) if t))


@dataclass(frozen=True)
class QuotaResult:
    """One quota for one scope instance (and subject) over one period."""

    quota: Quota
    instance: str
    subject: str  # per-subject quotas; "" otherwise
    period: Window
    held: int
    required: int

    @property
    def met(self) -> bool:
        """At least what the quota requires."""
        return self.held >= self.required


@dataclass
class TermQuotas:
    """A term's facts and every quota's results, for the report views."""

    term: Term
    quotas: list[Quota]
    lessons: list[LessonFact]
    results: list[QuotaResult]
    school_names: dict[str, str] = field(default_factory=dict)
    school_levels: dict[str, str] = field(default_factory=dict)  # school → level ("": none)
    teacher_names: dict[str, str] = field(default_factory=dict)
    teacher_school: dict[str, str] = field(default_factory=dict)
    classroom_school: dict[str, str] = field(default_factory=dict)
    pairings: dict[str, list[str]] = field(default_factory=dict)  # pairing → its schools


def school_year(day: date) -> Window:
    """The school year (学年) holding ``day``: 1 September to 31 August."""
    y = day.year if day.month >= 9 else day.year - 1
    return Window(f"{y}-{y + 1}", date(y, 9, 1), date(y + 1, 8, 31))


def windows(term: Term, period: str, teaching: Iterable[date]) -> list[Window]:
    """The periods of ``term`` for a quota: weeks with a teaching day (clipped to the term),
    calendar months (clipped), the term itself, or its school year."""
    first, last = term.start_date, term.end_date
    if period == "semester":
        return [Window(term.id, first, last)]
    if period == "year":
        return [school_year(first)]
    out: dict[str, Window] = {}
    for day in sorted(teaching):
        if period == "week":
            iso = day.isocalendar()
            monday = day - timedelta(days=day.weekday())
            label = f"{iso.year}-W{iso.week:02d}"
            w = Window(label, max(monday, first), min(monday + timedelta(days=6), last))
        else:
            nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            label = f"{day.year}-{day.month:02d}"
            w = Window(
                label, max(date(day.year, day.month, 1), first), min(nxt - timedelta(1), last)
            )
        out.setdefault(label, w)
    return list(out.values())


def _window_of(ws: list[Window]) -> dict[date, Window]:
    """Each day of the windows → its window (the windows do not overlap)."""
    out: dict[date, Window] = {}
    for w in ws:
        day = w.first
        while day <= w.last:
            out[day] = w
            day += timedelta(days=1)
    return out


def load_facts(db: Session, term: Term, first: date, last: date) -> TermQuotas:
    """Every lesson (not cancelled) from ``first`` to ``last`` with its outcome."""
    tz = ZoneInfo(term.timezone)
    rooms = {c.id: c.school for c in db.scalars(select(Classroom))}
    pairings = list(db.scalars(select(Pairing).order_by(Pairing.id)))
    schools_of = {p.id: [p.supporting_school_id, *p.supported_school_ids] for p in pairings}
    by_school: dict[str, list[str]] = defaultdict(list)
    for pid, members in schools_of.items():
        for s in members:
            by_school[s].append(pid)
    # Lesson times are UTC, days the term's local days: a day's margin either side.
    lo, hi = first - timedelta(days=1), last + timedelta(days=1)
    rows, receivers, coverage = lesson_rows(db, lo, hi, with_reports=False)
    in_range = lessons_near(lo, hi)
    stitched = {
        (lid, cid, track)
        for lid, cid, track in db.execute(
            select(Recording.lesson_id, Recording.classroom_id, Recording.track).where(
                Recording.lesson_id.in_(in_range)
            )
        )
    }
    published = {
        lid
        for lid, cid, track in db.execute(
            select(
                PublishedRecording.lesson_id,
                PublishedRecording.classroom_id,
                PublishedRecording.track,
            ).where(PublishedRecording.lesson_id.in_(in_range))
        )
        if (lid, cid, track) in stitched  # a published recording that is gone is not one
    }
    recorded = {(lid, cid) for lid, cid, _ in stitched}
    # Inspectors' scores (评课): each lesson's mean share of the rubric's points.
    scored: dict[str, list[float]] = defaultdict(list)
    for lid, total, out_of in db.execute(
        select(LessonScore.lesson_id, LessonScore.total, LessonScore.out_of).where(
            LessonScore.lesson_id.in_(in_range)
        )
    ):
        if out_of:
            scored[lid].append(total / out_of)
    analysed = load_figures(db, in_range)
    # Delivery lessons on demand: held when the room played the item (controller.delivery).
    played = played_shares(db, in_range)
    assisting: dict[str, list[str]] = defaultdict(list)
    for lid, who in db.execute(
        select(LessonReceiver.lesson_id, LessonReceiver.assistant_teacher_id).where(
            LessonReceiver.lesson_id.in_(in_range),
            LessonReceiver.assistant_teacher_id.is_not(None),
        )
    ):
        if who:
            assisting[lid].append(who)
    facts = []
    for lid, kind, subject, start_at, lead, pairing_id, teacher, _ in rows:
        day = as_utc(start_at).astimezone(tz).date()
        if not first <= day <= last:
            continue
        got = receivers.get(lid, [])
        if lid in played:
            # Played at least delivery's own share: held, on the reports' scale.
            part = played[lid]
            share = None if part is None else part / PLAYED_HELD * HELD_SHARE
        else:
            share = media_share(lead, got, coverage.get(lid, {}))
        lead_school = rooms.get(lead, "")
        receiver_schools = {rooms.get(r, "") for r in got}
        schools = frozenset(s for s in (lead_school, *receiver_schools) if s)
        if pairing_id:
            paired = frozenset({pairing_id})
        else:
            paired = frozenset(
                pid
                for pid in by_school.get(lead_school, [])
                if any(s in schools_of[pid] for s in receiver_schools)
            )
        facts.append(
            LessonFact(
                id=lid,
                kind=kind,
                subject=subject or NO_SUBJECT,
                day=day,
                teacher=teacher,
                classrooms=(lead, *got),
                schools=schools,
                pairings=paired,
                cross_school=any(s != lead_school for s in receiver_schools),
                held=share is not None and share >= HELD_SHARE,
                recorded=(lid, lead) in recorded,
                published=lid in published,
                review=sum(scored[lid]) / len(scored[lid]) if lid in scored else None,
                assistants=tuple(sorted(assisting.get(lid, ()))),
                st=analysed.get(lid),
            )
        )
    teachers = list(db.scalars(select(Teacher)))
    school_rows = list(db.scalars(select(School)))
    return TermQuotas(
        term=term,
        quotas=stored_quotas(term.quotas),
        lessons=facts,
        results=[],
        school_names={s.id: s.name for s in school_rows},
        school_levels={s.id: s.level or "" for s in school_rows},
        teacher_names={t.id: t.name for t in teachers},
        teacher_school={t.id: t.school_id for t in teachers},
        classroom_school=rooms,
        pairings=schools_of,
    )


def _instances(f: LessonFact, scope: str) -> Iterable[str]:
    if scope == "school":
        return f.schools
    if scope == "pairing":
        return f.pairings
    if scope == "classroom":
        return f.classrooms
    if scope == "teacher":
        return f.teachers
    return (f.subject,)


def _counted(f: LessonFact, q: Quota) -> bool:
    if q.counts == "published":
        return f.published
    if q.counts == "recorded":
        return f.recorded
    return f.held


class QuotaEngine:
    """Evaluates a term's quotas over the facts read by ``load_facts``."""

    def __init__(self, db: Session, tq: TermQuotas, first_pairing: dict[str, date]) -> None:
        self._tq = tq
        self._first_pairing = first_pairing
        term = tq.term
        self._teaching = list(term_calendar(db, term.id).teaching_days())
        self._pairing_forms = {p.id: set(p.forms) for p in db.scalars(select(Pairing))}
        self._pairing_dates = {
            p.id: (p.start_date, p.end_date) for p in db.scalars(select(Pairing))
        }

    def _all_instances(self, q: Quota) -> set[str]:
        tq = self._tq
        if q.scope == "school":
            found = set(tq.school_names) | {s for f in tq.lessons for s in f.schools}
        elif q.scope == "pairing":
            found = set(tq.pairings)
        elif q.scope == "classroom":
            found = set(tq.classroom_school)
        elif q.scope == "teacher":
            found = set(tq.teacher_names) | {t for f in tq.lessons for t in f.teachers}
        else:
            found = {f.subject for f in tq.lessons if q.kind in (ANY, f.kind)}
        return {x for x in found if self._applies(q, x)}

    def _applies(self, q: Quota, instance: str) -> bool:
        term = self._tq.term
        if q.scope == "pairing":
            span = self._pairing_dates.get(instance)
            if span is None or span[1] < term.start_date or span[0] > term.end_date:
                return False
            return q.only_if_form is None or q.only_if_form in self._pairing_forms[instance]
        if q.scope != "school":
            return True
        mine = [
            pid
            for pid, members in self._tq.pairings.items()
            if instance in members
            and self._pairing_dates[pid][1] >= term.start_date
            and self._pairing_dates[pid][0] <= term.end_date
        ]
        if q.only_if_form and not any(q.only_if_form in self._pairing_forms[p] for p in mine):
            return False
        if q.applies_to == "paired":
            return bool(mine)
        if q.applies_to == "newly_paired":
            began = self._first_pairing.get(instance)
            return began is not None and began > term.end_date - timedelta(NEWLY_PAIRED_DAYS)
        return True

    def evaluate(self, q: Quota) -> list[QuotaResult]:
        """One quota for every instance of its scope and every period of the term."""
        ws = windows(self._tq.term, q.period, self._teaching)
        where = _window_of(ws)
        instances = self._all_instances(q)
        counted: dict[tuple[str, str, str], int] = defaultdict(int)
        subjects: dict[tuple[str, str], set[str]] = defaultdict(set)
        per_subject = q.per_subject or q.measure == "subjects"
        subject_kind = q.subjects_of or q.kind
        for f in self._tq.lessons:
            w = where.get(f.day)
            if w is None:
                continue
            names_subject = per_subject and subject_kind in (ANY, f.kind)
            matches = q.kind in (ANY, f.kind) and (f.cross_school or not q.cross_school)
            if not (matches or names_subject):
                continue
            ok = matches and _counted(f, q)
            for inst in _instances(f, q.scope):
                if inst not in instances:
                    continue
                if names_subject:
                    subjects[(inst, w.label)].add(f.subject)
                if ok:
                    counted[(inst, f.subject if per_subject else "", w.label)] += 1
        out = []
        for inst in sorted(instances):
            for w in ws:
                if q.measure == "subjects":
                    n = sum(
                        1
                        for s in subjects[(inst, w.label)]
                        if counted[(inst, s, w.label)] >= q.each
                    )
                    out.append(QuotaResult(q, inst, "", w, n, q.min))
                elif q.per_subject:
                    for s in sorted(subjects[(inst, w.label)]):
                        out.append(QuotaResult(q, inst, s, w, counted[(inst, s, w.label)], q.min))
                else:
                    out.append(QuotaResult(q, inst, "", w, counted[(inst, "", w.label)], q.min))
        return out


def evaluate_term(
    db: Session, term_id: str, scope: Scope = COUNTY, until: date | None = None
) -> TermQuotas:
    """Every quota of the term for every scope instance and period; with a school scope,
    the instances that concern that school (its pairings whole, as the pairing report);
    with ``until``, counting only the lessons up to that day (a monthly report's figures
    to date)."""
    term = db.get(Term, term_id)
    if term is None:
        raise NotFound(f"term {term_id!r} does not exist; load it with 'timetable setup'")
    quotas = stored_quotas(term.quotas)
    first, last = term.start_date, term.end_date
    if any(q.period == "year" for q in quotas):
        year = school_year(first)
        first, last = min(first, year.first), max(last, year.last)
    tq = load_facts(db, term, first, last)
    if until is not None:
        tq.lessons = [f for f in tq.lessons if f.day <= until]
    began: dict[str, date] = {}
    for p in db.scalars(select(Pairing)):
        for s in (p.supporting_school_id, *p.supported_school_ids):
            began[s] = min(began.get(s, p.start_date), p.start_date)
    engine = QuotaEngine(db, tq, began)
    results = [r for q in tq.quotas for r in engine.evaluate(q)]
    if scope.school is not None:
        results = [r for r in results if _concerns(tq, r, scope.school)]
        tq.lessons = [f for f in tq.lessons if scope.school in f.schools]
    tq.results = results
    return tq


def _concerns(tq: TermQuotas, r: QuotaResult, school: str) -> bool:
    s = r.quota.scope
    if s == "school":
        return r.instance == school
    if s == "pairing":
        return school in tq.pairings.get(r.instance, [])
    if s == "classroom":
        return tq.classroom_school.get(r.instance) == school
    if s == "teacher":
        return tq.teacher_school.get(r.instance) == school
    return False  # subject-wide figures are the county's
