"""Quotas declared per term, and the engine: each default quota missed one lesson short of
its figure and met at it, each scope and period, and the set-up file's errors."""

from __future__ import annotations

import pathlib
from datetime import date, timedelta

import pytest
from quota_seed import lesson
from sqlalchemy.orm import Session, sessionmaker
from timetable_fixtures import ROOMS, SETUP

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.auth.scope import Scope
from controller.common.errors import InvalidRequest
from controller.db.models import (
    Pairing,
    Term,
)
from controller.db.session import make_engine, migrate, sessions
from controller.timetable.quota_engine import QuotaResult, evaluate_term
from controller.timetable.quota_reports import build_view, view_csv
from controller.timetable.quotas import DEFAULT_QUOTAS, stored_quotas
from controller.timetable.setup import apply_setup


@pytest.fixture
def db(tmp_path: pathlib.Path, db_url: str) -> sessionmaker[Session]:
    url = db_url
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
    return factory


def figure(
    s: Session, quota: str, instance: str, subject: str = "", period: str | None = None
) -> QuotaResult:
    """The one result of ``quota`` for ``instance`` (and subject, period)."""
    found = [
        r
        for r in evaluate_term(s, "spring").results
        if r.quota.id == quota
        and r.instance == instance
        and r.subject == subject
        and (period is None or r.period.label == period)
    ]
    assert len(found) == 1, found
    return found[0]


def days(n: int, first: date = date(2026, 3, 2)) -> list[date]:
    """``n`` term days (any weekday: the engine counts by date)."""
    return [first + timedelta(days=i % 28) for i in range(n)]


def test_the_defaults_are_the_mission_figures() -> None:
    figures = {q.id: (q.kind, q.period, q.scope, q.min) for q in DEFAULT_QUOTAS}
    assert figures == {
        "sync-total": ("synchronous", "semester", "pairing", 30),
        "sync-subjects": ("synchronous", "semester", "pairing", 2),
        "research": ("research", "semester", "pairing", 20),
        "delivery": ("delivery", "semester", "pairing", 12),
        "master-teacher": ("master_teacher", "semester", "pairing", 12),
        "all-forms-year": ("any", "year", "school", 60),
        "cross-school-sync": ("synchronous", "semester", "school", 4),
        "classroom-weekly": ("any", "week", "classroom", 1),
        "quality-recorded": ("any", "semester", "school", 5),
        "sync-research-subject": ("research", "semester", "school", 1),
    }
    assert next(q for q in DEFAULT_QUOTAS if q.id == "sync-subjects").each == 15


@pytest.mark.parametrize(
    ("quota", "kind", "need"),
    [("sync-total", "synchronous", 30), ("research", "research", 20), ("delivery", "delivery", 12)],
)
def test_pairing_counts_missed_one_short_and_met_at_the_figure(
    db: sessionmaker[Session], quota: str, kind: str, need: int
) -> None:
    with db() as s:
        for d in days(need - 1):
            lesson(s, d, kind)
        lesson(s, date(2026, 3, 5), kind, held=False)  # media did not flow: not counted
        lesson(s, date(2026, 3, 5), "open_school")  # another kind: not counted
        r = figure(s, quota, "p1")
        assert (r.held, r.required, r.met) == (need - 1, need, False)
        lesson(s, date(2026, 3, 6), kind)
        r = figure(s, quota, "p1")
        assert (r.held, r.met) == (need, True)


def test_master_teacher_quota_only_where_the_pairing_chose_it(db: sessionmaker[Session]) -> None:
    with db() as s:
        for d in days(11):
            lesson(s, d, "master_teacher")
        assert not [r for r in evaluate_term(s, "spring").results if r.quota.id == "master-teacher"]
        pairing = s.get(Pairing, "p1")
        assert pairing is not None
        pairing.forms = [*pairing.forms, "master_teacher"]
        s.commit()
        assert not figure(s, "master-teacher", "p1").met
        lesson(s, date(2026, 3, 20), "master_teacher")
        assert figure(s, "master-teacher", "p1").met


def test_two_subjects_of_fifteen_synchronous_lessons(db: sessionmaker[Session]) -> None:
    with db() as s:
        for d in days(15):
            lesson(s, d, subject="music")
        for d in days(14):
            lesson(s, d, subject="art")
        assert figure(s, "sync-subjects", "p1").held == 1
        assert not figure(s, "sync-subjects", "p1").met
        lesson(s, date(2026, 3, 25), subject="art")
        r = figure(s, "sync-subjects", "p1")
        assert (r.held, r.required, r.met) == (2, 2, True)


def test_sixty_lessons_a_school_year_for_a_newly_paired_school(db: sessionmaker[Session]) -> None:
    with db() as s:
        # The school year runs from September: an autumn lesson counts, the one before not.
        lesson(s, date(2025, 10, 9), "research")
        lesson(s, date(2025, 8, 29), "research")
        for d in days(58):
            lesson(s, d, "synchronous")
        r = figure(s, "all-forms-year", "village")
        assert (r.held, r.required, r.met, r.period.label) == (59, 60, False, "2025-2026")
        lesson(s, date(2026, 6, 1), "delivery")  # after the term, in the school year
        assert figure(s, "all-forms-year", "village").met
        pairing = s.get(Pairing, "p1")
        assert pairing is not None
        pairing.start_date = date(2024, 9, 1)  # paired for two years: not new
        s.commit()
        assert not [r for r in evaluate_term(s, "spring").results if r.quota.id == "all-forms-year"]


def test_four_cross_school_synchronous_lessons(db: sessionmaker[Session]) -> None:
    with db() as s:
        for d in days(3):
            lesson(s, d)
        lesson(s, receivers=("city-102",))  # both rooms in the city school: not cross-school
        assert (
            figure(s, "cross-school-sync", "city").held,
            figure(s, "cross-school-sync", "city").met,
        ) == (3, False)
        lesson(s, date(2026, 3, 27))
        assert figure(s, "cross-school-sync", "city").met
        assert figure(s, "cross-school-sync", "village").met  # the receiving school too


def test_recording_classroom_used_every_week(db: sessionmaker[Session]) -> None:
    with db() as s:
        weeks = [
            r.period.label
            for r in evaluate_term(s, "spring").results
            if r.quota.id == "classroom-weekly" and r.instance == "city-102"
        ]
        assert weeks == ["2026-W10", "2026-W11", "2026-W12", "2026-W13"]
        assert not figure(s, "classroom-weekly", "city-102", period="2026-W11").met
        lesson(s, date(2026, 3, 13), lead="city-101", receivers=("city-102",), held=False)
        assert not figure(s, "classroom-weekly", "city-102", period="2026-W11").met
        lesson(s, date(2026, 3, 13), lead="village-201", receivers=("city-102",))
        r = figure(s, "classroom-weekly", "city-102", period="2026-W11")
        assert (r.held, r.required, r.met) == (1, 1, True)
        assert not figure(s, "classroom-weekly", "city-102", period="2026-W12").met


def test_five_quality_recorded_lessons_per_subject(db: sessionmaker[Session]) -> None:
    with db() as s:
        for d in days(4):
            lesson(s, d, subject="art", published=True)
        lesson(s, subject="art", published=False)  # published, but its recording is gone
        lesson(s, subject="art")  # recorded nowhere
        r = figure(s, "quality-recorded", "city", "art")
        assert (r.held, r.required, r.met) == (4, 5, False)
        lesson(s, date(2026, 3, 18), subject="art", published=True)
        assert figure(s, "quality-recorded", "city", "art").met


def test_a_research_session_for_each_synchronous_subject(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson(s, subject="music")
        lesson(s, subject="art")
        lesson(s, date(2026, 3, 9), "research", subject="art")
        assert figure(s, "sync-research-subject", "city", "art").met
        r = figure(s, "sync-research-subject", "city", "music")
        assert (r.held, r.required, r.met) == (0, 1, False)
        lesson(s, date(2026, 3, 9), "research", subject="music")
        assert figure(s, "sync-research-subject", "village", "music").met


DECLARED = """
[[term.quota]]
id = "teacher-month"
label_zh = "教师每月授课"
label_en = "lessons a teacher leads a month"
kind = "同步课堂"
period = "month"
scope = "teacher"
min = 2

[[term.quota]]
id = "subject-term"
label_zh = "学科同步课"
label_en = "synchronous lessons per subject"
kind = "synchronous"
period = "term"
scope = "subject"
min = 4
"""


def _declare(s: Session, quotas: str) -> None:
    term = SETUP.split("[[term]]")[1].split("[[pairing]]")[0]
    apply_setup(s, f"[[term]]{term}{quotas}", "county.toml")


def test_a_term_declares_its_own_quotas_by_teacher_and_subject(db: sessionmaker[Session]) -> None:
    with db() as s:
        _declare(s, DECLARED)
        term = s.get(Term, "spring")
        assert term is not None and [q["id"] for q in term.quotas or []] == [
            "teacher-month",
            "subject-term",
        ]
        lesson(s, date(2026, 3, 3))
        lesson(s, date(2026, 3, 4), teacher="t-li")
        tq = evaluate_term(s, "spring")
        assert {r.quota.id for r in tq.results} == {"teacher-month", "subject-term"}
        r = figure(s, "teacher-month", "t-wang", period="2026-03")
        assert (r.held, r.required, r.met) == (1, 2, False)
        lesson(s, date(2026, 3, 26))
        assert figure(s, "teacher-month", "t-wang", period="2026-03").met
        assert not figure(s, "subject-term", "music").met
        teachers = {e.key: e for e in build_view(evaluate_term(s, "spring"), "teacher")}
        assert teachers["t-wang"].counts["synchronous"]["held"] == 2
        assert [r.met for r in teachers["t-li"].results] == [False]
        lesson(s, date(2026, 3, 27), teacher=None)
        assert figure(s, "subject-term", "music").met
        subjects = build_view(evaluate_term(s, "spring"), "subject")
        assert [e.key for e in subjects] == ["music"] and subjects[0].results[0].held == 4
        _declare(s, "")  # the term declares none again: the defaults
        assert len({r.quota.id for r in evaluate_term(s, "spring").results}) > 2


def test_schools_are_ranked_and_a_school_account_sees_its_own(db: sessionmaker[Session]) -> None:
    with db() as s:
        lesson(s, date(2026, 3, 4), lead="city-101", receivers=("city-102",))
        schools = build_view(evaluate_term(s, "spring"), "school")
        assert [(e.key, e.rank) for e in schools] == [("city", 1), ("village", 2)]
        assert schools[0].met > schools[1].met
        mine = evaluate_term(s, "spring", Scope("village"))
        assert {r.instance for r in mine.results if r.quota.scope == "school"} == {"village"}
        assert {r.instance for r in mine.results if r.quota.scope == "pairing"} == {"p1"}
        assert not [f for f in mine.lessons if "village" not in f.schools]
        text = view_csv(build_view(mine, "school"), "school")
        assert text.startswith("学校 school,名称 name,排名 rank,学段 level,指标 quota")
        assert "录播教室每周使用 (recording classroom used each week)" in text
        assert ",未设学段 no level," in text


def test_schools_are_ranked_within_their_level(
    db: sessionmaker[Session], tmp_path: pathlib.Path
) -> None:
    """学段: a village primary school is ranked against primary schools, a junior secondary
    school against its own level; a level given in Chinese or English, kept when left out."""
    with db() as s:
        apply_setup(
            s,
            """
            [[school]]
            id = "city"
            level = "primary"
            [[school]]
            id = "village"
            level = "小学"
            [[school]]
            id = "town"
            name = "Town Middle School"
            level = "junior"
            """,
        )
        add_classroom(s, "town-301", "town-301", "town", ServerKeys.load_or_create(tmp_path).public)
        lesson(s, date(2026, 3, 4), lead="city-101", receivers=("city-102",))
        schools = build_view(evaluate_term(s, "spring"), "school")
        assert [(e.key, e.level, e.rank) for e in schools] == [
            ("town", "junior", 1),
            ("city", "primary", 1),
            ("village", "primary", 2),
        ]
        assert schools[1].met > schools[2].met
        text = view_csv(schools, "school")
        assert "town,Town Middle School,1,初中 junior," in text
        assert "village,village,2,小学 primary," in text
        apply_setup(s, '[[school]]\nid = "village"\nname = "Village School"\n')
        again = {e.key: e for e in build_view(evaluate_term(s, "spring"), "school")}
        assert again["village"].level == "primary"
        with pytest.raises(InvalidRequest) as err:
            apply_setup(s, '[[school]]\nid = "kids"\nlevel = "kindergarten"\n')
        assert "set-up: school #1 (kids): level 'kindergarten' is not a school level" in str(
            err.value
        )
        assert "primary (小学)" in str(err.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('period = "fortnight"', "field 'period' = 'fortnight'; write one of week, month"),
        ('scope = "county"', "field 'scope' = 'county'; write one of school"),
        ('kind = "lecture"', "field 'kind' = 'lecture' is not a lesson kind"),
        ("min = 0", "field 'min' = 0; write a whole number ≥ 1"),
        ('min = "30"', "field 'min' = '30'"),
        ('colour = "red"', "unknown field 'colour'"),
        ('label_zh = ""', "field 'label_zh' is required"),
        ('measure = "subjects"', "field 'each' is required with measure"),
        ("per_subject = 1", "field 'per_subject' = 1; write true or false"),
        ('applies_to = "paired"\nscope = "teacher"', "DUPLICATE"),
    ],
)
def test_a_bad_quota_names_file_term_quota_and_field(
    db: sessionmaker[Session], body: str, message: str
) -> None:
    fields = {
        "id": '"q1"',
        "label_zh": '"同步"',
        "label_en": '"sync"',
        "kind": '"synchronous"',
        "period": '"semester"',
        "scope": '"pairing"',
        "min": "30",
    }
    for line in body.splitlines():
        key, value = line.split(" = ", 1)
        fields[key] = value
    quota = "[[term.quota]]\n" + "\n".join(f"{k} = {v}" for k, v in fields.items())
    if message == "DUPLICATE":
        message = "field 'applies_to' = 'paired' needs scope school or pairing"
    with db() as s, pytest.raises(InvalidRequest) as err:
        _declare(s, quota)
    assert str(err.value).startswith("county.toml: term 'spring' quota #1 ('q1'): "), err.value
    assert message in str(err.value)


def test_a_repeated_quota_id_and_a_missing_figure_are_refused(db: sessionmaker[Session]) -> None:
    one = DECLARED.split("[[term.quota]]")[1]
    with (
        db() as s,
        pytest.raises(InvalidRequest, match=r"quota #2 \('teacher-month'\): field 'id' repeats"),
    ):
        _declare(s, f"[[term.quota]]{one}[[term.quota]]{one}")
    with db() as s, pytest.raises(InvalidRequest, match="field 'min' is required"):
        _declare(s, "[[term.quota]]" + one.replace("min = 2", ""))


def test_the_commented_sample_declares_exactly_the_defaults(db: sessionmaker[Session]) -> None:
    sample = pathlib.Path(__file__).parents[3] / "controller/timetable/quotas.sample.toml"
    with db() as s:
        apply_setup(s, sample.read_text(encoding="utf-8"), str(sample))
        term = s.get(Term, "2026-spring")
        assert term is not None
        assert stored_quotas(term.quotas) == list(DEFAULT_QUOTAS)


def test_inspectors_scores_feed_the_teacher_and_school_reports(db: sessionmaker[Session]) -> None:
    """评课 scores reach the reports: each reviewed lesson's mean, averaged per entry."""
    from datetime import UTC, datetime

    from controller.db.models import LessonScore

    with db() as s:
        first = lesson(s, date(2026, 3, 4))
        second = lesson(s, date(2026, 3, 5))
        lesson(s, date(2026, 3, 6))  # not reviewed: not in the mean
        for lid, author, total in ((first, "i1", 80), (first, "i2", 60), (second, "i1", 90)):
            s.add(
                LessonScore(
                    lesson_id=lid,
                    author=author,
                    rubric={},
                    scores={},
                    total=total,
                    out_of=100,
                    comment="",
                    scored_at=datetime.now(UTC),
                )
            )
        s.commit()
        tq = evaluate_term(s, "spring")
    [wang] = [e for e in build_view(tq, "teacher") if e.key == "t-wang"]
    assert (len(wang.reviews), wang.review_mean_pct) == (2, 80.0)  # (70 + 90) / 2
    assert wang.to_json()["review_mean_pct"] == 80.0
    [city] = [e for e in build_view(tq, "school") if e.key == "city"]
    assert city.review_mean_pct == 80.0
    assert "评课均分% review mean %" in view_csv(build_view(tq, "teacher"), "teacher")
