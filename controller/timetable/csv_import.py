"""Importing a term's timetable from CSV: every problem reported by row before anything
is written.

Columns (header row required, UTF-8; Excel's BOM is fine)::

    date,period,start,end,kind,lead,receivers,teacher,subject,title

``period`` is looked up in the lead school's bell schedule; ``start``/``end`` (HH:MM)
may be given instead. ``receivers`` are separated by ';'. Each line is decoded on its
own, so a row saved in GBK (common in Chinese school offices) is reported as such, with
its row number, rather than failing the whole file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from controller.errors import OutOfScope
from controller.timetable.calendar import SchoolCalendar, parse_hhmm
from controller.timetable.planner import Candidate, Placement, Planner

COLUMNS = (
    "date",
    "period",
    "start",
    "end",
    "kind",
    "lead",
    "receivers",
    "teacher",
    "subject",
    "title",
)
REQUIRED = ("date", "kind", "lead")
# A term's timetable for a whole county is a few thousand rows; more is a wrong file, or
# an attempt to tie up the controller (every row is checked against the database). 5,000
# rows of about 80 bytes fit in 1 MiB, the body limit every route keeps to before it
# knows who is sending.
MAX_BYTES = 1024 * 1024
MAX_ROWS = 5000
# The problem code of a row naming a classroom outside the importing account's school.
OUT_OF_SCOPE = "out_of_scope"
# Raises OutOfScope when the importing account may not schedule these classrooms.
ScopeCheck = Callable[[Sequence[str]], None]


@dataclass
class RowProblem:
    """One problem, by row (the header is row 1, as a spreadsheet counts)."""

    row: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class ImportResult:
    """Rows that passed (as candidates) and every problem found."""

    good: list[tuple[int, Candidate]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    # Rows that passed on a network profile's ladder: the rung each went on, and why.
    placements: list[tuple[int, Placement]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No problem at all: the whole file may be written."""
        return not self.problems


def _decode_lines(data: bytes) -> tuple[list[str], list[RowProblem]]:
    problems = []
    lines = []
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]
    for number, raw in enumerate(raw_lines, 1):
        raw = raw.rstrip(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                guess = raw.decode("gb18030")
                hint = f" (it reads as GBK: {guess[:40]!r})"
            except UnicodeDecodeError:
                hint = ""
            problems.append(
                RowProblem(
                    number,
                    "encoding",
                    f"not valid UTF-8{hint}; save the file as 'CSV UTF-8' and import again",
                )
            )
            lines.append("")  # keep row numbers aligned
    return lines, problems


def limit_problem(data: bytes) -> RowProblem | None:
    """Why ``data`` is over the import's caps (MAX_BYTES, MAX_ROWS), or None."""
    if len(data) > MAX_BYTES:
        return RowProblem(
            1,
            "too_large",
            f"the file is {len(data)} bytes; a timetable import takes at most {MAX_BYTES} "
            f"bytes ({MAX_BYTES // (1024 * 1024)} MiB): split it, e.g. by school or month, "
            "and import the parts one by one",
        )
    rows = sum(1 for line in data.split(b"\n")[1:] if line.strip())
    if rows > MAX_ROWS:
        return RowProblem(
            MAX_ROWS + 2,
            "too_many_rows",
            f"the file has {rows} rows after the header; a timetable import takes at most "
            f"{MAX_ROWS} (row {MAX_ROWS + 2} is the first one over): split it, e.g. by "
            "school or month, and import the parts one by one",
        )
    return None


def parse_timetable_csv(
    data: bytes,
    planner: Planner,
    calendar: SchoolCalendar,
    periods: dict[str, dict[int, tuple[str, str]]],
    teachers: set[str],
    in_scope: ScopeCheck | None = None,
) -> ImportResult:
    """Check every row (against the database, through ``planner``, and against earlier
    rows of the same file); nothing is written here. ``in_scope`` refuses the rows whose
    classrooms the importing account may not schedule (problem code OUT_OF_SCOPE)."""
    result = ImportResult()
    too_much = limit_problem(data)
    if too_much is not None:
        result.problems.append(too_much)
        return result
    lines, result.problems = _decode_lines(data)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        result.problems.append(RowProblem(1, "header", "the file is empty; it needs a header row"))
        return result
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c and c not in COLUMNS]
    if missing or unknown:
        result.problems.append(
            RowProblem(
                1,
                "header",
                f"header needs columns {', '.join(REQUIRED)} (missing: {', '.join(missing) or '-'};"
                f" unknown: {', '.join(unknown) or '-'}); columns are {', '.join(COLUMNS)}",
            )
        )
        return result
    encoding_rows = {p.row for p in result.problems}
    teaching = calendar.teaching_days()
    for number, values in enumerate(reader, 2):
        if number in encoding_rows or not any(v.strip() for v in values):
            continue
        result.rows += 1
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        problems, placed = _row(
            number, row, planner, calendar, teaching, periods, teachers, in_scope
        )
        result.problems += problems
        if placed is not None:
            planner.add(placed.candidate)  # later rows are checked against this one
            result.good.append((number, placed.candidate))
            if placed.rung is not None:
                result.placements.append((number, placed))
    result.problems.sort(key=lambda p: p.row)
    return result


def _row(
    number: int,
    row: dict[str, str],
    planner: Planner,
    calendar: SchoolCalendar,
    teaching: dict[date, int],
    periods: dict[str, dict[int, tuple[str, str]]],
    teachers: set[str],
    in_scope: ScopeCheck | None,
) -> tuple[list[RowProblem], Placement | None]:
    out: list[RowProblem] = []

    def bad(code: str, message: str) -> tuple[list[RowProblem], None]:
        out.append(RowProblem(number, code, message))
        return out, None

    try:
        day = date.fromisoformat(row["date"])
    except ValueError:
        return bad("date", f"date {row['date']!r} is not a date; write it as 2026-03-02")
    if not calendar.start <= day <= calendar.end:
        return bad("date", f"date {day} is outside the term ({calendar.start} – {calendar.end})")
    if day not in teaching:
        return bad("date", f"{day} is not a teaching day (weekend or holiday) in this term")
    lead = row["lead"]
    room = planner.rooms.get(lead)
    if room is None:
        return bad("classroom", f"unknown classroom {lead!r} (column lead); add it first")
    receivers = tuple(r.strip() for r in row.get("receivers", "").split(";") if r.strip())
    if in_scope is not None:
        try:
            in_scope([lead, *receivers])
        except OutOfScope as err:
            return bad(OUT_OF_SCOPE, str(err))
    try:
        if row.get("period"):
            period = int(row["period"])
            table = periods.get(room.school, {})
            if period not in table:
                return bad(
                    "period",
                    f"period {period} is not in the bell schedule of school {room.school!r}"
                    f" (it has {', '.join(map(str, sorted(table))) or 'none'})",
                )
            start_hhmm, end_hhmm = table[period]
        else:
            start_hhmm, end_hhmm = parse_hhmm(row.get("start", "")), parse_hhmm(row.get("end", ""))
    except ValueError as err:
        return bad("time", f"{err}; give a period, or start and end as HH:MM")
    teacher = row.get("teacher") or None
    if teacher is not None and teacher not in teachers:
        return bad("teacher", f"unknown teacher {teacher!r}; add teachers before the timetable")
    candidate = Candidate(
        ref=f"row {number}",
        kind=row["kind"],
        lead=lead,
        receivers=receivers,
        start=calendar.at(day, start_hhmm),
        end=calendar.at(day, end_hhmm),
        teacher=teacher,
        subject=row.get("subject", ""),
        title=row.get("title", ""),
    )
    placement = planner.place(candidate)
    if placement.problems:
        out += [RowProblem(number, p.code, p.message) for p in placement.problems]
        return out, None
    return out, placement
