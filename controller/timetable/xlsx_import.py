"""A timetable workbook (.xlsx) read as the CSV import reads a file: the same columns and
checks, row numbers as Excel shows them.

The county office keeps its timetable in Excel; saving it as CSV first is a step that
loses Chinese (GBK) or dates (regional formats). The first sheet is read with openpyxl in
read-only mode (cells' values, formulas' last results), at most the import's row cap, and
turned into CSV text: dates as 2026-03-02, times as 08:00, whole numbers without ".0".
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time

XLSX_MAGIC = b"PK\x03\x04"  # a ZIP archive, as every .xlsx is
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_COLUMNS = 40


class WorkbookError(ValueError):
    """A workbook that cannot be read; the message says what to do."""


def is_xlsx(data: bytes) -> bool:
    """Whether the upload is a ZIP archive (an .xlsx workbook), not text."""
    return data.startswith(XLSX_MAGIC)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows(out: io.StringIO) -> int:
    return out.getvalue().count("\n")


def xlsx_as_csv(data: bytes, max_rows: int) -> bytes:
    """The workbook's first sheet as UTF-8 CSV (header and at most ``max_rows + 1`` rows
    after it, so the import's cap still reports the first row over it)."""
    from openpyxl import load_workbook  # imported here: only workbooks need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:
        raise WorkbookError(
            f"the file looks like an Excel workbook but cannot be read ({err}); open it in "
            "Excel and save it again as .xlsx, or as 'CSV UTF-8'"
        ) from err
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise WorkbookError("the workbook has no sheet; put the timetable on its first sheet")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        try:
            for number, row in enumerate(
                sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1
            ):
                if number > max_rows + 2:
                    break
                writer.writerow([_cell(v) for v in row])
        except Exception as err:
            raise WorkbookError(
                f"the workbook's first sheet cannot be read after row {_rows(out)} ({err}); "
                "open it in Excel and save it again, or as 'CSV UTF-8'"
            ) from err
    finally:
        book.close()
    return out.getvalue().encode()
