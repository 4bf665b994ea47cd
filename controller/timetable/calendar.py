"""The school calendar: which dates of a term are teaching days, and as which weekday.

Holidays are left out. A make-up working day (调休) — usually a Saturday or Sunday that
replaces a weekday given off around a holiday — runs that weekday's timetable. Periods
come from the school's bell schedule, in the term's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class SchoolCalendar:
    """A term's teaching days."""

    start: date
    end: date
    timezone: str = "Asia/Shanghai"
    holidays: frozenset[date] = frozenset()
    makeup: dict[date, int] = field(default_factory=dict)  # date → weekday it runs as

    def teaching_days(self) -> dict[date, int]:
        """Every teaching date with the weekday (0 = Monday) whose timetable it runs."""
        out: dict[date, int] = {}
        day = self.start
        while day <= self.end:
            if day in self.makeup:
                out[day] = self.makeup[day]
            elif day.weekday() < 5 and day not in self.holidays:
                out[day] = day.weekday()
            day += timedelta(days=1)
        return out

    def dates_for(self, weekday: int, skip: set[date] | None = None) -> list[date]:
        """The dates a weekly series on ``weekday`` meets, minus its exceptions."""
        skip = skip or set()
        return [d for d, wd in self.teaching_days().items() if wd == weekday and d not in skip]

    def at(self, day: date, hhmm: str) -> datetime:
        """A local wall-clock time on ``day`` as an aware datetime."""
        hour, minute = (int(x) for x in hhmm.split(":"))
        return datetime.combine(day, time(hour, minute), ZoneInfo(self.timezone))


def parse_hhmm(text: str) -> str:
    """'8:05' → '08:05'; ValueError says what is expected."""
    try:
        hour, minute = (int(x) for x in text.strip().split(":"))
    except ValueError:
        raise ValueError(f"time {text!r} is not HH:MM") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"time {text!r} is not a time of day")
    return f"{hour:02d}:{minute:02d}"
