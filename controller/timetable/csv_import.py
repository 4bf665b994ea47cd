"""Importing a term's timetable from CSV or an Excel workbook (.xlsx, its first sheet:
``xlsx_import``): every problem reported by row before anything is written.

Columns (header row required), in English or in Chinese::

    date,period,start,end,kind,lead,receivers,teacher,subject,title
    日期,节次,开始,结束,类型,主讲教室,接收教室,教师,学科,课题

The file is UTF-8 (Excel's BOM is fine) or, as Excel saves "CSV" on a Chinese Windows
PC, GBK/GB18030: the encoding is detected for the whole file. Only a file that is
neither is decoded line by line, so each row that is not UTF-8 is reported with its row
number. Kinds may be written in Chinese (同步课堂, 专递课堂, 名师课堂, 名校网络课堂,
教师网络研修); dates as 2026-03-02 or 2026/3/2; periods as 3 or 第3节. ``period`` is
looked up in the lead school's bell schedule; ``start``/``end`` (HH:MM) may be given
instead. ``receivers`` are separated by ';' (or '；', '、').
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from controller.common.errors import OutOfScope
from controller.timetable.calendar import SchoolCalendar, parse_hhmm
from controller.timetable.kinds import canonical_kind
from controller.timetable.planner import Candidate, Placement, Planner
from controller.timetable.xlsx_import import WorkbookError, is_xlsx, xlsx_as_csv

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
    "assistants",
)
REQUIRED = ("date", "kind", "lead")
# Chinese headers, as county offices write them, to the columns above.
HEADER_ALIASES = {
    "日期": "date",
    "上课日期": "date",
    "节次": "period",
    "节": "period",
    "开始": "start",
    "开始时间": "start",
    "结束": "end",
    "结束时间": "end",
    "类型": "kind",
    "课型": "kind",
    "课堂类型": "kind",
    "主讲教室": "lead",
    "主讲": "lead",
    "接收教室": "receivers",
    "听课教室": "receivers",
    "教师": "teacher",
    "主讲教师": "teacher",
    "授课教师": "teacher",
    "辅导教师": "assistants",
    "助教": "assistants",
    "学科": "subject",
    "科目": "subject",
    "课题": "title",
    "课程名称": "title",
}
RECEIVER_SEPARATORS = re.compile(r"[;；、]")
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
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = _whole_file(data)
    if text is not None:
        return [line.rstrip("\r") for line in text.split("\n")], []
    problems = []
    lines = []
    raw_lines = data.split(b"\n")
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
                    f"not valid UTF-8{hint}, and the file as a whole is neither UTF-8 nor "
                    "GBK (rows of both mixed?); save it as 'CSV UTF-8' and import again",
                )
            )
            lines.append("")  # keep row numbers aligned
    return lines, problems


def _utf8_beyond_ascii(line: bytes) -> bool:
    if line.isascii():
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _whole_file(data: bytes) -> str | None:
    """The file as UTF-8, else as GB18030 (which reads every GBK file the same way);
    None for a file of both: GB18030 would also read UTF-8's Chinese as other Chinese,
    so such a file is reported row by row rather than garbled."""
    for encoding in ("utf-8", "gb18030"):
        if encoding == "gb18030" and any(_utf8_beyond_ascii(x) for x in data.split(b"\n")):
            return None
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


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
    if is_xlsx(data) and len(data) <= MAX_BYTES:
        # An Excel workbook: its first sheet, read as this CSV would be (its caps then
        # apply to the rows, not to the archive's bytes).
        try:
            data = xlsx_as_csv(data, MAX_ROWS)
        except WorkbookError as err:
            result.problems.append(RowProblem(1, "workbook", str(err)))
            return result
    too_much = limit_problem(data)
    if too_much is not None:
        result.problems.append(too_much)
        return result
    lines, result.problems = _decode_lines(data)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    try:
        header = [_column(h) for h in next(reader)]
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


def parse_assistants(text: str, receivers: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The ``assistants`` cell: ``t-zhao`` for a lesson with one receiving room, else
    ``village-201:t-zhao;village-202:t-qian`` (Chinese ：；、 too); ``ValueError`` says how."""
    items = [i.strip() for i in RECEIVER_SEPARATORS.split(text) if i.strip()]
    out = []
    for item in items:
        room, sep, teacher = item.replace("：", ":").partition(":")
        if not sep:
            if len(receivers) != 1 or len(items) != 1:
                raise ValueError(
                    f"{item!r}: with several receiving rooms, name the room of each "
                    "assistant teacher, e.g. village-201:t-zhao;village-202:t-qian"
                )
            room, teacher = receivers[0], item
        out.append((room.strip(), teacher.strip()))
    return tuple(out)


def _column(name: str) -> str:
    cleaned = name.strip()
    return HEADER_ALIASES.get(cleaned, cleaned.lower())


def _date(text: str) -> date | None:
    """2026-03-02, 2026-3-2 or 2026/3/2 (as Excel writes dates on a Chinese PC)."""
    match = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text.strip())
    if match is None:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _period(text: str) -> int:
    """3, or 第3节; ValueError otherwise."""
    match = re.fullmatch(r"第?\s*(\d{1,2})\s*节?", text.strip())
    if match is None:
        raise ValueError(f"period {text!r} is not a period number")
    return int(match.group(1))


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

    day = _date(row["date"])
    if day is None:
        return bad("date", f"date {row['date']!r} is not a date; write it as 2026-03-02")
    if not calendar.start <= day <= calendar.end:
        return bad("date", f"date {day} is outside the term ({calendar.start} – {calendar.end})")
    if day not in teaching:
        return bad("date", f"{day} is not a teaching day (weekend or holiday) in this term")
    lead = row["lead"]
    room = planner.rooms.get(lead)
    if room is None:
        return bad("classroom", f"unknown classroom {lead!r} (column lead); add it first")
    receivers = tuple(
        r.strip() for r in RECEIVER_SEPARATORS.split(row.get("receivers", "")) if r.strip()
    )
    if in_scope is not None:
        try:
            in_scope([lead, *receivers])
        except OutOfScope as err:
            return bad(OUT_OF_SCOPE, str(err))
    try:
        if row.get("period"):
            period = _period(row["period"])
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
    try:
        assistants = parse_assistants(row.get("assistants", ""), receivers)
    except ValueError as err:
        return bad("assistants", str(err))
    for _, who in assistants:
        if who not in teachers:
            return bad("assistants", f"unknown teacher {who!r}; add teachers before the timetable")
    candidate = Candidate(
        ref=f"row {number}",
        kind=canonical_kind(row["kind"]),
        lead=lead,
        receivers=receivers,
        start=calendar.at(day, start_hhmm),
        end=calendar.at(day, end_hhmm),
        teacher=teacher,
        subject=row.get("subject", ""),
        title=row.get("title", ""),
        assistants=assistants,
    )
    placement = planner.place(candidate)
    if placement.problems:
        out += [RowProblem(number, p.code, p.message) for p in placement.problems]
        return out, None
    return out, placement
