"""``classroom-controller timetable …``: set-up, series, CSV import, iCal, reports."""

from __future__ import annotations

import json
import pathlib
from datetime import date
from typing import Annotated

import typer
from sqlalchemy import select

from controller.common.cli_common import DEFAULT_STATE, Database, StateDir, fail, open_db
from controller.common.errors import ControllerError
from controller.db.models import Teacher
from controller.timetable.csv_import import parse_timetable_csv
from controller.timetable.ical import lessons_for, to_ical
from controller.timetable.loading import insert_lessons, planner_for
from controller.timetable.quota_engine import evaluate_term
from controller.timetable.quota_reports import (
    RANKING_NOTE,
    VIEWS,
    build_view,
    csv_bytes,
    view_csv,
)
from controller.timetable.reports import report_csv, report_html, term_report
from controller.timetable.setup import apply_setup, bell_periods, expand_term, term_calendar

NOTES_SHOWN = 20  # lessons placed below their top rung, listed before a count of the rest

timetable_app = typer.Typer(help="The term timetable (大课表).", no_args_is_help=True)


@timetable_app.command("setup")
def setup_cmd(
    file: Annotated[
        pathlib.Path,
        typer.Argument(help="TOML: schools, bells, teachers, terms, pairings, series."),
    ],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Load schools, bell schedules, teachers, terms, pairings and lesson series."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"{file}: {err}")
    with open_db(state_dir, database)() as db:
        try:
            counts = apply_setup(db, text, str(file))
        except ControllerError as err:
            fail(str(err))
    typer.echo(", ".join(f"{n} {k}" for k, n in counts.items()) + " loaded")


@timetable_app.command("expand")
def expand_cmd(
    term: Annotated[str, typer.Argument(help="Term id.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; write nothing.")] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Turn a term's lesson series into lessons; every problem is listed with its reason."""
    with open_db(state_dir, database)() as db:
        try:
            result = expand_term(db, term, write=not dry_run)
        except ControllerError as err:
            fail(str(err))
    for line in result.notes[:NOTES_SHOWN]:
        typer.echo(line)
    if len(result.notes) > NOTES_SHOWN:
        typer.echo(f"… and {len(result.notes) - NOTES_SHOWN} more placed below their top rung")
    for line in result.problems:
        typer.echo(line)
    verb = "would create" if dry_run else "created"
    typer.echo(f"{verb} {len(result.created)} lessons; {len(result.problems)} problem(s)")
    if result.problems:
        raise typer.Exit(1)


@timetable_app.command("import")
def import_cmd(
    file: Annotated[pathlib.Path, typer.Argument(help="CSV: date,period,kind,lead,receivers,…")],
    term: Annotated[str, typer.Option(help="Term the rows belong to.")],
    commit: Annotated[bool, typer.Option("--commit", help="Write, if the file is clean.")] = False,
    good_rows: Annotated[
        bool, typer.Option("--good-rows", help="Write the rows that passed, skip the rest.")
    ] = False,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a term's timetable CSV row by row (a dry run unless --commit or --good-rows).

    Exit 0 clean, 1 problems found (nothing written unless --good-rows), 2 unusable."""
    try:
        data = file.read_bytes()
    except OSError as err:
        fail(f"{file}: {err}")
    with open_db(state_dir, database)() as db:
        try:
            cal = term_calendar(db, term)
        except ControllerError as err:
            fail(str(err))
        start, end = cal.at(cal.start, "00:00"), cal.at(cal.end, "23:59")
        teachers = set(db.scalars(select(Teacher.id)).all())
        result = parse_timetable_csv(
            data, planner_for(db, (start, end)), cal, bell_periods(db), teachers
        )
        write = (commit and result.clean) or good_rows
        created = (
            insert_lessons(
                db, [(c, {"term_id": term}) for _, c in result.good], f"imported from {file.name}"
            )
            if write
            else []
        )
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "rows": result.rows,
                    "good": len(result.good),
                    "problems": [
                        {"row": p.row, "code": p.code, "message": p.message}
                        for p in result.problems
                    ],
                    "placements": [
                        {"row": row, **(placed.document() or {})}
                        for row, placed in result.placements
                    ],
                    "created": created,
                }
            )
        )
    else:
        lowered = [f"row {row}: {pl.reason}" for row, pl in result.placements if pl.lowered]
        for line in lowered[:NOTES_SHOWN]:
            typer.echo(line)
        if len(lowered) > NOTES_SHOWN:
            typer.echo(f"… and {len(lowered) - NOTES_SHOWN} more placed below their top rung")
        for p in result.problems:
            typer.echo(str(p))
        typer.echo(
            f"{result.rows} rows: {len(result.good)} good, {len(result.problems)} problem(s); "
            + (f"{len(created)} lessons written" if write else "nothing written")
            + ("" if write or not result.clean else " (dry run: add --commit to write)")
        )
    if result.problems:
        raise typer.Exit(1)


@timetable_app.command("ical")
def ical_cmd(
    classroom: Annotated[str | None, typer.Option(help="A classroom's calendar.")] = None,
    teacher: Annotated[str | None, typer.Option(help="A teacher's calendar.")] = None,
    school: Annotated[str | None, typer.Option(help="A school's calendar.")] = None,
    output: Annotated[
        pathlib.Path | None, typer.Option("-o", help="File (default stdout).")
    ] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Export lessons as iCalendar (RFC 5545) for calendar programs."""
    with open_db(state_dir, database)() as db:
        try:
            lessons = lessons_for(db, classroom, teacher, school)
        except ControllerError as err:
            fail(str(err))
        data = to_ical(lessons, f"classbridge {classroom or teacher or school}")
    if output is None:
        typer.echo(data.decode("utf-8"), nl=False)
    else:
        output.write_bytes(data)
        typer.echo(f"{len(lessons)} lessons written to {output}")


@timetable_app.command("report")
def report_cmd(
    start: Annotated[str, typer.Option("--from", help="First day, 2026-03-02.")],
    end: Annotated[str, typer.Option("--to", help="Last day.")],
    fmt: Annotated[str, typer.Option("--format", help="text, csv or html.")] = "text",
    output: Annotated[pathlib.Path | None, typer.Option("-o")] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """Every pairing's lessons scheduled, held and recorded against its quotas."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as err:
        fail(f"{err}; write dates as 2026-03-02")
    with open_db(state_dir, database)() as db:
        reports = term_report(db, first, last)
    if fmt == "csv":
        text = report_csv(reports)
    elif fmt == "html":
        text = report_html(reports, f"Pairing report {first} – {last}")
    elif fmt == "text":
        lines = []
        for r in reports:
            lines.append(f"{r.pairing} ({', '.join(r.schools)}): {'MET' if r.met else 'NOT MET'}")
            for name, n, need, ok in r.checks:
                lines.append(f"  {'ok ' if ok else 'NO '} {name}: {n} of {need}")
        text = "\n".join(lines) + "\n"
    else:
        fail(f"--format {fmt!r}: use text, csv or html")
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@timetable_app.command("quotas")
def quotas_cmd(
    term: Annotated[str, typer.Option("--term", help="The term's id, as in the set-up file.")],
    by: Annotated[str, typer.Option("--by", help="school, teacher, subject or pairing.")] = (
        "school"
    ),
    fmt: Annotated[str, typer.Option("--format", help="text, csv or json.")] = "text",
    output: Annotated[pathlib.Path | None, typer.Option("-o")] = None,
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    database: Database = None,
) -> None:
    """A term's quotas (考核指标) by school (ranked), teacher, subject or pairing."""
    if by not in VIEWS:
        fail(f"--by {by!r}: use one of {', '.join(VIEWS)}")
    if fmt not in ("text", "csv", "json"):
        fail(f"--format {fmt!r}: use text, csv or json")
    with open_db(state_dir, database)() as db:
        try:
            entries = build_view(evaluate_term(db, term), by)
        except ControllerError as err:
            fail(str(err))
    if fmt == "csv":
        data = csv_bytes(view_csv(entries, by))  # with a BOM, for Excel on a Chinese PC
    elif fmt == "json":
        data = (json.dumps([e.to_json() for e in entries], ensure_ascii=False) + "\n").encode()
    else:
        lines = [RANKING_NOTE] if by == "school" else []
        for e in entries:
            rank = f"#{e.rank} " if e.rank else ""
            lines.append(f"{rank}{e.key} ({e.name}): {e.met} of {len(e.results)} met")
            for r in e.results:
                subject = f" [{r.subject}]" if r.subject else ""
                lines.append(
                    f"  {'ok ' if r.met else 'NO '} {r.quota.label}{subject} {r.instance} "
                    f"{r.period.label}: {r.held} of {r.required}"
                )
        data = ("\n".join(lines) + "\n").encode()
    if output is None:
        typer.echo(data.decode("utf-8-sig"), nl=False)
    else:
        output.write_bytes(data)
