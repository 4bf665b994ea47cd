"""Parsing the times and durations schedulers type: ISO 8601 or relative ('+30s', '+2m')."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

RELATIVE = re.compile(r"^\+?(\d+(?:\.\d+)?)(s|m|h|d)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'45m', '20s', '1.5h', '7d' → timedelta."""
    match = RELATIVE.match(text.strip())
    if not match:
        raise ValueError(f"duration {text!r} is not valid; write e.g. 45m, 20s, 1.5h or 7d")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """'+10s' (from now) or an ISO time; a time without zone is taken as UTC."""
    now = now or datetime.now(UTC)
    stripped = text.strip()
    if stripped.startswith("+"):
        return now + parse_duration(stripped)
    try:
        value = datetime.fromisoformat(stripped)
    except ValueError as err:
        raise ValueError(
            f"time {text!r} is not valid; write e.g. 2026-03-02T08:00+08:00 or +30s"
        ) from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)
