"""The controller's security lifetimes, declared once and checked at start-up: console
sessions, API tokens, enrolment tokens and the agents' upload tokens (等保 level 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SecurityPolicy:
    """How long each credential lives. ``__post_init__`` refuses values out of bounds and
    combinations that make no sense (a grace longer than the rotation period)."""

    # Console sessions: signed out after this long without a request, and after this long
    # in all, however busy.
    session_idle: timedelta = timedelta(minutes=30)
    session_lifetime: timedelta = timedelta(hours=12)
    # API tokens made without an explicit expiry.
    api_token_lifetime: timedelta = timedelta(days=90)
    # One-time enrolment tokens from ``classroom add``.
    enrol_token_ttl: timedelta = timedelta(hours=24)
    # Upload tokens: a fresh one to each connected agent this often; the one it replaces
    # keeps working this long, so uploads under way finish.
    upload_token_rotation: timedelta = timedelta(hours=24)
    upload_token_grace: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        bounds = {
            "session_idle": (timedelta(minutes=1), timedelta(hours=24)),
            "session_lifetime": (timedelta(minutes=5), timedelta(days=7)),
            "api_token_lifetime": (timedelta(hours=1), timedelta(days=730)),
            "enrol_token_ttl": (timedelta(minutes=5), timedelta(days=7)),
            "upload_token_rotation": (timedelta(minutes=1), timedelta(days=30)),
            "upload_token_grace": (timedelta(seconds=10), timedelta(days=1)),
        }
        for name, (low, high) in bounds.items():
            value: timedelta = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} = {value} is outside {low} … {high}")
        if self.session_idle > self.session_lifetime:
            raise ValueError(
                f"session_idle ({self.session_idle}) is longer than session_lifetime "
                f"({self.session_lifetime}); the idle limit would never apply"
            )
        if self.upload_token_grace >= self.upload_token_rotation:
            raise ValueError(
                f"upload_token_grace ({self.upload_token_grace}) must be shorter than "
                f"upload_token_rotation ({self.upload_token_rotation})"
            )
