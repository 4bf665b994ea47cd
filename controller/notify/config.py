"""A notification subscription's settings, parsed from an API body with errors that name
the field, and shown back without its secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.agents.alerts import SEVERITIES
from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest
from controller.db.models import NotifySubscription
from controller.db.session import as_utc

CHANNELS = ("dingtalk", "wecom", "email")
FIELDS = frozenset(
    {
        "name",
        "school",
        "channel",
        "config",
        "min_severity",
        "quiet_hours",
        "timezone",
        "escalation",
        "escalate_after_minutes",
        "hold_down_minutes",
    }
)
# Config fields never returned by GET, by channel.
SECRETS: dict[str, frozenset[str]] = {
    "dingtalk": frozenset({"webhook", "secret"}),
    "wecom": frozenset({"webhook"}),
    "email": frozenset({"password"}),
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_RECIPIENTS = 50


def _text(cfg: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = cfg.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequestField(f"{where}.{name}", value, "given (a non-empty string)")
        return ""
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidRequestField(f"{where}.{name}", value, "a string of at most 2000 characters")
    return value


def _webhook(cfg: Mapping[str, Any], query_key: str, where: str) -> str:
    url = _text(cfg, "webhook", where)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequestField(f"{where}.webhook", url, "an http(s) URL of the group robot")
    if not parse_qs(parts.query).get(query_key):
        raise InvalidRequestField(
            f"{where}.webhook", url, f"the robot's URL with its {query_key}=... parameter"
        )
    return url


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestField(name, value, f"a whole number from {low} to {high}")
    return value


def channel_config(channel: str, raw: object) -> dict[str, Any]:
    """The channel's settings, checked: ``InvalidRequestField`` names ``config.<field>``."""
    if not isinstance(raw, dict):
        raise InvalidRequestField("config", raw, f"an object of {channel} settings")
    where = "config"
    if channel == "dingtalk":
        out: dict[str, Any] = {"webhook": _webhook(raw, "access_token", where)}
        secret = _text(raw, "secret", where, required=False)
        if secret and not secret.startswith("SEC"):
            raise InvalidRequestField(
                "config.secret", "***", "the robot's signing secret (it starts with SEC)"
            )
        out["secret"] = secret
    elif channel == "wecom":
        out = {"webhook": _webhook(raw, "key", where)}
        msgtype = raw.get("msgtype", "markdown")
        if msgtype not in ("text", "markdown"):
            raise InvalidRequestField("config.msgtype", msgtype, "'text' or 'markdown'")
        out["msgtype"] = msgtype
    else:
        out = {"host": _text(raw, "host", where)}
        port = raw.get("port", 25)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidRequestField("config.port", port, "a TCP port (1 to 65535)")
        out["port"] = port
        security = raw.get("security", "starttls")
        if security not in ("none", "starttls", "tls"):
            raise InvalidRequestField("config.security", security, "'none', 'starttls' or 'tls'")
        out["security"] = security
        out["from"] = _text(raw, "from", where)
        if not EMAIL.match(out["from"]):
            raise InvalidRequestField("config.from", out["from"], "an e-mail address")
        to = raw.get("to")
        if (
            not isinstance(to, list)
            or not 0 < len(to) <= MAX_RECIPIENTS
            or not all(isinstance(a, str) and EMAIL.match(a) for a in to)
        ):
            raise InvalidRequestField(
                "config.to", to, f"a list of 1 to {MAX_RECIPIENTS} e-mail addresses"
            )
        out["to"] = list(to)
        out["username"] = _text(raw, "username", where, required=False)
        out["password"] = _text(raw, "password", where, required=False)
    unknown = sorted(set(raw) - set(out) - ({"msgtype"} if channel == "wecom" else set()))
    if unknown:
        raise InvalidRequest(f"unknown field(s) config.{', config.'.join(unknown)} for {channel}")
    return out


@dataclass(frozen=True)
class SubscriptionSpec:
    """A subscription as the API gives it, validated."""

    name: str
    school: str | None
    channel: str
    config: dict[str, Any] = field(default_factory=dict)
    min_severity: str = "warning"
    quiet_start: str | None = None
    quiet_end: str | None = None
    timezone: str = "Asia/Shanghai"
    escalation: bool = False
    escalate_after_min: int = 15
    hold_down_min: int = 10

    @classmethod
    def parse(cls, body: object) -> SubscriptionSpec:
        """From a JSON body; ``InvalidRequest`` naming the first bad field."""
        if not isinstance(body, dict):
            raise InvalidRequest("body must be a JSON object describing one subscription")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise InvalidRequest(
                f"unknown field(s) {', '.join(unknown)}; a subscription takes "
                f"{', '.join(sorted(FIELDS))}"
            )
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise InvalidRequestField("name", name, "a name of 1 to 100 characters")
        school = body.get("school")
        if school is not None and (not isinstance(school, str) or not 0 < len(school) <= 200):
            raise InvalidRequestField("school", school, "a school's name, or null for the county")
        channel = body.get("channel")
        if channel not in CHANNELS:
            raise InvalidRequestField("channel", channel, f"one of {', '.join(CHANNELS)}")
        config = channel_config(channel, body.get("config"))
        severity = body.get("min_severity", "warning")
        if severity not in SEVERITIES:
            raise InvalidRequestField("min_severity", severity, f"one of {', '.join(SEVERITIES)}")
        quiet = body.get("quiet_hours")
        start = end = None
        if quiet is not None:
            if not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
                raise InvalidRequestField(
                    "quiet_hours", quiet, 'null or {"start": "HH:MM", "end": "HH:MM"}'
                )
            for key in ("start", "end"):
                if not isinstance(quiet[key], str) or not HHMM.match(quiet[key]):
                    raise InvalidRequestField(f"quiet_hours.{key}", quiet[key], "a time HH:MM")
            start, end = quiet["start"], quiet["end"]
            if start == end:
                raise InvalidRequestField("quiet_hours.end", end, "a time other than the start")
        tz = body.get("timezone", "Asia/Shanghai")
        try:
            if not isinstance(tz, str) or not 0 < len(tz) <= 64:
                raise ValueError(tz)
            ZoneInfo(tz)
        except (ValueError, ZoneInfoNotFoundError):
            raise InvalidRequestField("timezone", tz, "an IANA time zone (Asia/Shanghai)") from None
        escalation = body.get("escalation", False)
        if not isinstance(escalation, bool):
            raise InvalidRequestField("escalation", escalation, "true or false")
        return cls(
            name=name.strip(),
            school=school,
            channel=channel,
            config=config,
            min_severity=severity,
            quiet_start=start,
            quiet_end=end,
            timezone=tz,
            escalation=escalation,
            escalate_after_min=_int(body, "escalate_after_minutes", 15, 1, 24 * 60),
            hold_down_min=_int(body, "hold_down_minutes", 10, 0, 24 * 60),
        )


def stored_body(sub: NotifySubscription) -> dict[str, Any]:
    """The subscription as the API body that would create it, secrets included (never
    answered: the base a partial update is laid over)."""
    return {
        "name": sub.name,
        "school": sub.school,
        "channel": sub.channel,
        "config": dict(sub.config or {}),
        "min_severity": sub.min_severity,
        "quiet_hours": (
            {"start": sub.quiet_start, "end": sub.quiet_end}
            if sub.quiet_start is not None and sub.quiet_end is not None
            else None
        ),
        "timezone": sub.timezone,
        "escalation": sub.escalation,
        "escalate_after_minutes": sub.escalate_after_min,
        "hold_down_minutes": sub.hold_down_min,
    }


def patched(sub: NotifySubscription, patch: object) -> SubscriptionSpec:
    """The subscription with a partial update laid over it, validated as a new one.

    ``config`` is merged into the stored one while the channel stays the same, so a
    secret (a robot's signing secret, a mail password) is kept unless it is sent again;
    a new channel takes only the config sent."""
    if not isinstance(patch, dict):
        raise InvalidRequest("body must be a JSON object of the fields to change")
    unknown = sorted(set(patch) - FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; a subscription's fields are "
            f"{', '.join(sorted(FIELDS))}"
        )
    if not patch:
        raise InvalidRequest(f"nothing to change; send one or more of {', '.join(sorted(FIELDS))}")
    body = stored_body(sub)
    channel = patch.get("channel", sub.channel)
    if "config" in patch:
        if not isinstance(patch["config"], dict):
            raise InvalidRequestField("config", patch["config"], f"an object of {channel} settings")
        base = body["config"] if channel == sub.channel else {}
        body["config"] = {**base, **patch["config"]}
    elif channel != sub.channel:
        raise InvalidRequestField("config", None, f"the {channel} settings, to change channel")
    body.update({k: v for k, v in patch.items() if k != "config"})
    return SubscriptionSpec.parse(body)


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(sub: NotifySubscription, now: datetime) -> datetime | None:
    """When the subscription's quiet hours end (UTC, as the database keeps times), if
    ``now`` is inside them; else None."""
    if sub.quiet_start is None or sub.quiet_end is None:
        return None
    zone = ZoneInfo(sub.timezone)
    local = now.astimezone(zone)
    start, end = _hhmm(sub.quiet_start), _hhmm(sub.quiet_end)
    t = local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    until = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    return until.astimezone(UTC)


def _masked(channel: str, config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in SECRETS.get(channel, frozenset()):
            out[key] = value
        elif key == "webhook" and isinstance(value, str):
            parts = urlsplit(value)  # where it goes, not the key that lets one post
            out["webhook"] = f"{parts.scheme}://{parts.netloc}{parts.path}?***"
        else:
            out[f"{key}_set"] = bool(value)
    return out


def subscription_document(sub: NotifySubscription) -> dict[str, Any]:
    """One subscription as JSON, secrets left out, with its channel's health."""
    return {
        "id": sub.id,
        "name": sub.name,
        "school": sub.school,
        "channel": sub.channel,
        "config": _masked(sub.channel, sub.config or {}),
        "min_severity": sub.min_severity,
        "quiet_hours": (
            {"start": sub.quiet_start, "end": sub.quiet_end}
            if sub.quiet_start is not None
            else None
        ),
        "timezone": sub.timezone,
        "escalation": sub.escalation,
        "escalate_after_minutes": sub.escalate_after_min,
        "hold_down_minutes": sub.hold_down_min,
        "created_by": sub.created_by,
        "failing": sub.failing_since is not None,
        "failing_since": as_utc(sub.failing_since).isoformat() if sub.failing_since else None,
        "last_error": sub.last_error or None,
        "last_sent_at": as_utc(sub.last_sent_at).isoformat() if sub.last_sent_at else None,
    }
