"""Loading a county's timetable set-up from TOML, and expanding lesson series into lessons.

::

    [[school]]
    id = "city-no1"
    name = "City No.1 Primary"
    level = "primary"          # 学段: primary 小学, junior 初中, senior 高中, nine_year, complete
    uplink_kbps = 100000
    bells = [["08:00", "08:40"], ["08:50", "09:30"]]   # periods 1, 2, …

    [[teacher]]
    id = "t-wang"
    name = "Wang Li"
    school = "city-no1"

    [[term]]
    id = "2026-spring"
    start = 2026-03-02
    end = 2026-07-10
    holidays = [2026-04-06, 2026-05-01]
    makeup = [{ date = 2026-04-26, runs_as = "friday" }]

    [[term.quota]]          # none declared: the county plans' (timetable/quotas.py)
    id = "sync-total"
    label_zh = "同步课堂总数"
    label_en = "synchronous lessons held"
    kind = "synchronous"
    period = "semester"
    scope = "pairing"
    min = 30

    [[pairing]]
    id = "p-city1-village2"
    supporting = "city-no1"
    supported = ["village-2"]
    forms = ["synchronous", "research"]
    start = 2026-03-01
    end = 2026-07-31

    [[series]]
    term = "2026-spring"
    kind = "synchronous"
    lead = "city-no1-101"
    receivers = ["village-2-201"]
    teacher = "t-wang"
    subject = "music"
    weekday = "tuesday"
    period = 2
    pairing = "p-city1-village2"
    exceptions = [2026-03-17]
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import (
    BellPeriod,
    Lesson,
    LessonSeries,
    Pairing,
    School,
    Teacher,
    Term,
    TermDay,
)
from controller.db.session import as_utc
from controller.timetable.calendar import SchoolCalendar, parse_hhmm
from controller.timetable.loading import insert_lessons, planner_for
from controller.timetable.planner import Candidate, Planner
from controller.timetable.quotas import parse_quotas
from controller.timetable.school_levels import parse_level

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: object, where: str) -> int:
    if isinstance(value, int) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.lower() in WEEKDAYS:
        return WEEKDAYS.index(value.lower())
    raise InvalidRequest(f"{where}: weekday {value!r} should be monday … sunday")


def _date(value: object, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(f"{where}: {value!r} is not a date (2026-03-02)") from None


def _need(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise InvalidRequest(f"{where}: '{key}' is required")
    return entry[key]


def apply_setup(db: Session, text: str, source: str = "set-up") -> dict[str, int]:
    """Insert or replace schools, bells, teachers, terms, pairings and series."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InvalidRequest(f"{source}: not valid TOML: {err}") from None
    counts = {"school": 0, "teacher": 0, "term": 0, "pairing": 0, "series": 0}
    for i, e in enumerate(doc.get("school", []), 1):
        where = f"{source}: school #{i}"
        sid = str(_need(e, "id", where))
        school = School(
            id=sid, name=str(e.get("name", sid)), uplink_kbps=int(e.get("uplink_kbps", 0))
        )
        if "level" in e:  # left out: a level set before is kept
            school.level = parse_level(e["level"], f"{where} ({sid})")
        db.merge(school)
        db.execute(delete(BellPeriod).where(BellPeriod.school_id == sid))
        for period, pair in enumerate(e.get("bells", []), 1):
            try:
                ring, dismiss = parse_hhmm(pair[0]), parse_hhmm(pair[1])
            except (ValueError, IndexError, TypeError) as err:
                raise InvalidRequest(f"{where}: bells[{period}] {pair!r}: {err}") from None
            db.add(BellPeriod(school_id=sid, period=period, start=ring, end=dismiss))
        counts["school"] += 1
    for i, e in enumerate(doc.get("teacher", []), 1):
        where = f"{source}: teacher #{i}"
        tid = str(_need(e, "id", where))
        db.merge(Teacher(id=tid, name=str(e.get("name", tid)), school_id=str(e.get("school", ""))))
        counts["teacher"] += 1
    for i, e in enumerate(doc.get("term", []), 1):
        where = f"{source}: term #{i}"
        tid = str(_need(e, "id", where))
        start, end = _date(_need(e, "start", where), where), _date(_need(e, "end", where), where)
        if end < start:
            raise InvalidRequest(f"{where}: ends ({end}) before it starts ({start})")
        quotas = (
            [q.to_dict() for q in parse_quotas(e["quota"], f"{source}: term '{tid}'")]
            if "quota" in e
            else None  # the county plans' defaults
        )
        db.merge(
            Term(
                id=tid,
                name=str(e.get("name", tid)),
                start_date=start,
                end_date=end,
                timezone=str(e.get("timezone", "Asia/Shanghai")),
                quotas=quotas,
            )
        )
        db.execute(delete(TermDay).where(TermDay.term_id == tid))
        for h in e.get("holidays", []):
            db.add(TermDay(term_id=tid, day=_date(h, where), kind="holiday", runs_as=None, name=""))
        for m in e.get("makeup", []):
            db.add(
                TermDay(
                    term_id=tid,
                    day=_date(_need(m, "date", where), where),
                    kind="makeup",
                    runs_as=_weekday(_need(m, "runs_as", where), where),
                    name=str(m.get("name", "")),
                )
            )
        counts["term"] += 1
    for i, e in enumerate(doc.get("pairing", []), 1):
        where = f"{source}: pairing #{i}"
        supported = [str(s) for s in e.get("supported", [])]
        if not 1 <= len(supported) <= 2:
            raise InvalidRequest(
                f"{where}: a pairing supports one or two schools, not {len(supported)}"
            )
        db.merge(
            Pairing(
                id=str(_need(e, "id", where)),
                name=str(e.get("name", "")),
                supporting_school_id=str(_need(e, "supporting", where)),
                supported_school_ids=supported,
                forms=[str(f) for f in e.get("forms", [])],
                start_date=_date(_need(e, "start", where), where),
                end_date=_date(_need(e, "end", where), where),
            )
        )
        counts["pairing"] += 1
    for i, e in enumerate(doc.get("series", []), 1):
        where = f"{source}: series #{i}"
        db.add(
            LessonSeries(
                id=str(e.get("id") or uuid.uuid4().hex[:12]),
                term_id=str(_need(e, "term", where)),
                kind=str(_need(e, "kind", where)),
                title=str(e.get("title", "")),
                subject=str(e.get("subject", "")),
                teacher_id=e.get("teacher"),
                pairing_id=e.get("pairing"),
                lead_classroom_id=str(_need(e, "lead", where)),
                receivers=[str(r) for r in e.get("receivers", [])],
                weekday=_weekday(_need(e, "weekday", where), where),
                period=int(_need(e, "period", where)),
                exceptions=[_date(x, where).isoformat() for x in e.get("exceptions", [])],
                assistants=_assistants(e.get("assistants"), where) or None,
            )
        )
        counts["series"] += 1
    db.commit()
    return counts


def _assistants(value: object, where: str) -> dict[str, str]:
    """A series' ``assistants = {"village-201" = "t-zhao"}``: receiving room → teacher."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise InvalidRequest(
            f"{where}: assistants must map receiving rooms to teachers, e.g. assistants = "
            f'{{"village-201" = "t-zhao"}}; got {value!r}'
        )
    return dict(value)


def term_calendar(db: Session, term_id: str) -> SchoolCalendar:
    """The term's calendar from its days."""
    term = db.get(Term, term_id)
    if term is None:
        raise NotFound(f"term {term_id!r} does not exist; load it with 'timetable setup'")
    days = db.scalars(select(TermDay).where(TermDay.term_id == term_id)).all()
    return SchoolCalendar(
        term.start_date,
        term.end_date,
        term.timezone,
        frozenset(d.day for d in days if d.kind == "holiday"),
        {d.day: int(d.runs_as) for d in days if d.kind == "makeup" and d.runs_as is not None},
    )


def bell_periods(db: Session) -> dict[str, dict[int, tuple[str, str]]]:
    """school → period → (start, end)."""
    out: dict[str, dict[int, tuple[str, str]]] = {}
    for b in db.scalars(select(BellPeriod)).all():
        out.setdefault(b.school_id, {})[b.period] = (b.start, b.end)
    return out


@dataclass
class ExpansionResult:
    """What a term's series became."""

    created: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lessons placed below their top rung


def expand_term(db: Session, term_id: str, write: bool = True) -> ExpansionResult:
    """Turn every series of the term into lessons, each checked by the rules."""
    cal = term_calendar(db, term_id)
    periods = bell_periods(db)
    start = cal.at(cal.start, "00:00")
    end = cal.at(cal.end, "23:59")
    planner: Planner = planner_for(db, (start, end))
    series = db.scalars(select(LessonSeries).where(LessonSeries.term_id == term_id)).all()
    result = ExpansionResult()
    good: list[tuple[Candidate, dict[str, object]]] = []
    teaching = cal.teaching_days()
    # Expanding again only adds what is new (a series added or an exception removed).
    done = {
        (sid, as_utc(at))
        for sid, at in db.execute(
            select(Lesson.series_id, Lesson.start_at).where(Lesson.term_id == term_id)
        ).all()
    }
    for s in series:
        room = planner.rooms.get(s.lead_classroom_id)
        if room is None:
            result.problems.append(f"series {s.id}: unknown lead classroom {s.lead_classroom_id!r}")
            continue
        table = periods.get(room.school, {})
        if s.period not in table:
            result.problems.append(
                f"series {s.id}: period {s.period} is not in school {room.school!r}'s bell schedule"
            )
            continue
        begin, finish = table[s.period]
        skip = {date.fromisoformat(x) for x in s.exceptions}
        pairing = db.get(Pairing, s.pairing_id) if s.pairing_id else None
        first, last = (pairing.start_date, pairing.end_date) if pairing else (cal.start, cal.end)
        for day in (
            d
            for d, wd in teaching.items()
            if wd == s.weekday and d not in skip and first <= d <= last
        ):
            cand = Candidate(
                ref=f"series {s.id} on {day}",
                kind=s.kind,
                lead=s.lead_classroom_id,
                receivers=tuple(s.receivers),
                start=cal.at(day, begin),
                end=cal.at(day, finish),
                teacher=s.teacher_id,
                subject=s.subject,
                title=s.title,
                assistants=tuple(sorted((s.assistants or {}).items())),
            )
            if (s.id, cand.start) in done:
                continue
            placement = planner.place(cand)
            if placement.problems:
                result.problems += [f"{cand.ref}: {p.message}" for p in placement.problems]
                continue
            if placement.lowered:
                result.notes.append(f"{cand.ref}: {placement.reason}")
            cand = placement.candidate
            planner.add(cand)
            good.append((cand, {"series_id": s.id, "pairing_id": s.pairing_id, "term_id": term_id}))
    if write:
        result.created = insert_lessons(db, good, f"from series (term {term_id})")
    else:
        result.created = [c.ref for c, _ in good]
    return result
