"""Reading typed fields out of a JSON request body, with errors that name the field, what
was sent and what is valid (``InvalidRequest``, answered as 400)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from controller.common.errors import InvalidRequest


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class InvalidRequestField(InvalidRequest):
    """A body field of the wrong type or value."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(f"field {name!r} must be {expected}; got {_shown(value)}")
        self.field = name


def assistants_field(body: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``body["assistants"]``: each receiving room's assistant teacher (辅导教师), as
    ``{"village-201": "t-zhao"}``; empty when left out or null."""
    value = body.get("assistants")
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v and len(k) <= 64 and len(v) <= 64
        for k, v in value.items()
    ):
        raise InvalidRequestField(
            "assistants", value, 'an object of receiving room → teacher, {"village-201": "t-zhao"}'
        )
    return tuple(sorted(value.items()))


def number_field(body: Mapping[str, Any], name: str, default: float) -> float:
    """``body[name]`` as a finite number (JSON number or numeric string); ``default`` when
    it is left out or null."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequestField(name, value, "a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidRequestField(name, value, "a number") from None
    if not math.isfinite(number):
        raise InvalidRequestField(name, value, "a finite number")
    return number


def string_field(body: Mapping[str, Any], name: str, default: str = "") -> str:
    """``body[name]`` as a string (numbers are accepted and turned into text); ``default``
    when it is left out or null."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequestField(name, value, "a string")
    return str(value)


def optional_string_field(body: Mapping[str, Any], name: str) -> str | None:
    """``body[name]`` as a string, or None when it is left out, null or empty."""
    value = string_field(body, name)
    return value or None


def string_list_field(body: Mapping[str, Any], name: str) -> list[str]:
    """``body[name]`` as a list of strings (ids); empty when it is left out or null."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidRequestField(name, value, "a list of ids (strings)")
    return [str(v) for v in value]
