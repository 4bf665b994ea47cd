"""Quotas (考核指标): what a term's lessons must add up to, declared in the set-up file.

A quota counts lessons of one kind (or ``any``) over a period (week, month, semester, or
the school year 学年 from 1 September) for each instance of a scope (school, pairing,
classroom, teacher, subject), and asks for at least ``min`` of them. A term declares its
own in the set-up TOML; a term that declares none is checked against ``DEFAULT_QUOTAS``,
the county plans' figures (a commented copy: ``quotas.sample.toml``)::

    [[term.quota]]
    id = "sync-total"
    label_zh = "同步课堂总数"
    label_en = "synchronous lessons held"
    kind = "synchronous"        # a lesson kind (English or Chinese name) or "any"
    period = "semester"         # week | month | semester (or term) | year
    scope = "pairing"           # school | pairing | classroom | teacher | subject
    min = 30
    # optional:
    counts = "held"             # held (media flowed) | recorded | published (优质课例)
    per_subject = false         # one figure per subject within each scope instance
    subjects_of = "synchronous" # per_subject: the kind whose lessons name the subjects
    measure = "lessons"         # lessons | subjects (subjects with at least `each`)
    each = 15
    cross_school = false        # only lessons whose receivers include another school
    only_if_form = "delivery"   # only pairings (or their schools) that chose this form
    applies_to = "all"          # all | paired | newly_paired (school scope)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from controller.common.errors import InvalidRequest
from controller.timetable.kinds import KINDS, canonical_kind

PERIODS = ("week", "month", "semester", "year")
PERIOD_ALIASES = {
    "term": "semester",
    "学期": "semester",
    "周": "week",
    "月": "month",
    "学年": "year",
}
SCOPES = ("school", "pairing", "classroom", "teacher", "subject")
COUNTS = ("held", "recorded", "published")
MEASURES = ("lessons", "subjects")
APPLIES = ("all", "paired", "newly_paired")
ANY = "any"


class QuotaInvalid(InvalidRequest):
    """A quota the rules refuse; ``field`` is the field the message names (None: the whole
    entry), so the console can show the error beside it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        named = _FIELD.search(message)
        self.field = named.group(1) if named else None
        self.index: int | None = None  # the quota's place in its list, from 1


_FIELD = re.compile(r"field '(\w+)'")


@dataclass(frozen=True)
class Quota:
    """One declared quota: at least ``min`` counted lessons per scope instance and period."""

    id: str
    label_zh: str
    label_en: str
    kind: str  # a key of KINDS, or "any"
    period: str
    scope: str
    min: int
    counts: str = "held"
    per_subject: bool = False
    subjects_of: str | None = None
    measure: str = "lessons"
    each: int = 0
    cross_school: bool = False
    only_if_form: str | None = None
    applies_to: str = "all"
    source: str = ""  # the policy figure it comes from

    @property
    def label(self) -> str:
        """Chinese with English beside, as the console and the CSV show it."""
        return f"{self.label_zh} ({self.label_en})"

    def to_dict(self) -> dict[str, Any]:
        """The quota as stored in ``Term.quotas`` and sent by the API."""
        return asdict(self)


_COUNTY = "county pairing plan (semester quotas a paired school must meet)"
_OTHER = "another county plan"

DEFAULT_QUOTAS: tuple[Quota, ...] = (
    Quota(
        "sync-total",
        "同步课堂总数",
        "synchronous lessons held",
        "synchronous",
        "semester",
        "pairing",
        30,
        source=f"{_COUNTY}: at least 30 synchronous lessons in all",
    ),
    Quota(
        "sync-subjects",
        "同步课堂学科数（每科至少15节）",
        "subjects with at least 15 synchronous lessons",
        "synchronous",
        "semester",
        "pairing",
        2,
        measure="subjects",
        each=15,
        source=f"{_COUNTY}: at least 2 subjects, at least 15 lessons per subject",
    ),
    Quota(
        "research",
        "教师网络研修",
        "teacher online research sessions",
        "research",
        "semester",
        "pairing",
        20,
        source=f"{_COUNTY}: teacher online research at least 20",
    ),
    Quota(
        "delivery",
        "专递课堂",
        "delivery lessons",
        "delivery",
        "semester",
        "pairing",
        12,
        only_if_form="delivery",
        source=f"{_COUNTY}: delivery lessons (where chosen) 12",
    ),
    Quota(
        "master-teacher",
        "名师课堂观摩",
        "master-teacher observation lessons",
        "master_teacher",
        "semester",
        "pairing",
        12,
        only_if_form="master_teacher",
        source=f"{_COUNTY}: master-teacher observation (where chosen) 12",
    ),
    Quota(
        "all-forms-year",
        "新结对学校全年各类课堂",
        "lessons of all forms a year (newly paired)",
        ANY,
        "year",
        "school",
        60,
        applies_to="newly_paired",
        source=f"{_COUNTY}: all forms together at least 60 a year for newly paired schools",
    ),
    Quota(
        "cross-school-sync",
        "跨校同步课堂",
        "cross-school synchronous lessons",
        "synchronous",
        "semester",
        "school",
        4,
        cross_school=True,
        applies_to="paired",
        source=f"{_OTHER}: at least 4 cross-school synchronous lessons a semester",
    ),
    Quota(
        "classroom-weekly",
        "录播教室每周使用",
        "recording classroom used each week",
        ANY,
        "week",
        "classroom",
        1,
        source=f"{_OTHER}: the recording classroom used at least once a week",
    ),
    Quota(
        "quality-recorded",
        "优质录播课例（每学科）",
        "quality recorded lessons per subject",
        ANY,
        "semester",
        "school",
        5,
        counts="published",
        per_subject=True,
        source=f"{_OTHER}: at least 5 quality recorded lessons per subject a semester",
    ),
    Quota(
        "sync-research-subject",
        "同步课堂教研（每学科）",
        "synchronous-lesson research sessions per subject",
        "research",
        "semester",
        "school",
        1,
        per_subject=True,
        subjects_of="synchronous",
        applies_to="paired",
        source="issue 16: at least one synchronous-lesson research session per subject a semester",
    ),
)

_CHOICES: dict[str, tuple[str, ...]] = {
    "period": PERIODS,
    "scope": SCOPES,
    "counts": COUNTS,
    "measure": MEASURES,
    "applies_to": APPLIES,
}
_KNOWN = {f.name for f in fields(Quota)}


def _kind(value: object, where: str, key: str) -> str:
    kind = canonical_kind(str(value))
    if kind != ANY and kind not in KINDS:
        raise QuotaInvalid(
            f"{where}: field '{key}' = {value!r} is not a lesson kind; "
            f"write one of {', '.join(KINDS)} (or their Chinese names), or 'any'"
        )
    return kind


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise QuotaInvalid(f"{where}: field '{key}' is required (a non-empty string)")
    return value.strip()


def parse_quota(entry: object, where: str) -> Quota:
    """One ``[[term.quota]]`` table as a Quota; InvalidRequest names ``where`` (file, term,
    quota), the field, and what to write instead."""
    if not isinstance(entry, dict):
        raise QuotaInvalid(f"{where}: a quota is a table ([[term.quota]]), not {entry!r}")
    qid = _text(entry, "id", where)
    where = f"{where} ('{qid}')"
    unknown = sorted(set(entry) - _KNOWN)
    if unknown:
        raise QuotaInvalid(
            f"{where}: unknown field '{unknown[0]}'; the fields are {', '.join(sorted(_KNOWN))}"
        )
    values: dict[str, Any] = {"id": qid}
    for key in ("label_zh", "label_en", "kind", "period", "scope"):
        values[key] = _text(entry, key, where)
    values["kind"] = _kind(values["kind"], where, "kind")
    values["period"] = PERIOD_ALIASES.get(values["period"], values["period"])
    for key, choices in _CHOICES.items():
        if key in entry or key in values:
            raw = values.get(key, entry.get(key))
            if raw not in choices:
                raise QuotaInvalid(
                    f"{where}: field '{key}' = {raw!r}; write one of {', '.join(choices)}"
                )
            values[key] = raw
    for key in ("min", "each"):
        if key not in entry and key == "min":
            raise QuotaInvalid(f"{where}: field 'min' is required (a whole number ≥ 1)")
        if key in entry:
            n = entry[key]
            if isinstance(n, bool) or not isinstance(n, int) or n < (1 if key == "min" else 0):
                raise QuotaInvalid(
                    f"{where}: field '{key}' = {n!r}; write a whole number ≥ "
                    f"{1 if key == 'min' else 0}"
                )
            values[key] = n
    for key in ("per_subject", "cross_school"):
        if key in entry:
            if not isinstance(entry[key], bool):
                raise QuotaInvalid(f"{where}: field '{key}' = {entry[key]!r}; write true or false")
            values[key] = entry[key]
    for key in ("subjects_of", "only_if_form"):
        if key in entry:
            values[key] = _kind(entry[key], where, key)
    if "source" in entry:
        values["source"] = str(entry["source"])
    quota = Quota(**values)
    _cross_check(quota, where)
    return quota


def _cross_check(q: Quota, where: str) -> None:
    if q.measure == "subjects" and q.each < 1:
        raise QuotaInvalid(
            f"{where}: field 'each' is required with measure = \"subjects\" (the lessons a "
            "subject needs to count, e.g. 15)"
        )
    if q.measure == "subjects" and q.per_subject:
        raise QuotaInvalid(
            f"{where}: field 'per_subject' cannot be true with measure = \"subjects\"; choose one"
        )
    if q.scope == "subject" and q.per_subject:
        raise QuotaInvalid(
            f"{where}: field 'per_subject' is already implied by scope = \"subject\"; remove it"
        )
    if q.subjects_of and not q.per_subject:
        raise QuotaInvalid(f"{where}: field 'subjects_of' needs per_subject = true")
    if q.applies_to != "all" and q.scope not in ("school", "pairing"):
        raise QuotaInvalid(
            f"{where}: field 'applies_to' = {q.applies_to!r} needs scope school or pairing"
        )


def parse_quotas(entries: object, where: str) -> list[Quota]:
    """A term's ``quota`` array; ids must be unique."""
    if not isinstance(entries, list):
        raise QuotaInvalid(f"{where}: 'quota' must be an array of tables ([[term.quota]])")
    out: list[Quota] = []
    for i, entry in enumerate(entries, 1):
        try:
            q = parse_quota(entry, f"{where} quota #{i}")
            if any(x.id == q.id for x in out):
                raise QuotaInvalid(
                    f"{where} quota #{i} ('{q.id}'): field 'id' repeats an earlier quota; "
                    "give each quota its own id"
                )
        except QuotaInvalid as err:
            err.index = i
            raise
        out.append(q)
    return out


def stored_quotas(stored: list[dict[str, Any]] | None) -> list[Quota]:
    """The quotas a term holds (``Term.quotas``): None (declared none) is the defaults; an
    empty list is a term that checks no quota (set so through the API)."""
    if stored is None:
        return list(DEFAULT_QUOTAS)
    return [Quota(**{k: v for k, v in d.items() if k in _KNOWN}) for d in stored]
