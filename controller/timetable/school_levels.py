"""A school's level (学段): schools are ranked against schools of the same level, as the
bureau compares them (a village primary school with other primary schools)."""

from __future__ import annotations

from controller.common.errors import InvalidRequest

#: Each level's name in code, with the Chinese a county office writes.
LEVELS: dict[str, str] = {
    "primary": "小学",
    "junior": "初中",
    "senior": "高中",
    "nine_year": "九年一贯制",
    "complete": "完全中学",
}
_BY_CHINESE = {zh: code for code, zh in LEVELS.items()}
NO_LEVEL = ""


def parse_level(value: object, where: str) -> str:
    """The level's code from its English or Chinese name; a bad one names the choices."""
    text = str(value).strip()
    if text in LEVELS:
        return text
    if text in _BY_CHINESE:
        return _BY_CHINESE[text]
    choices = ", ".join(f"{code} ({zh})" for code, zh in LEVELS.items())
    raise InvalidRequest(f"{where}: level {text!r} is not a school level; write one of {choices}")


def level_label(code: str | None) -> str:
    """``小学 primary``, or ``未设学段 no level``."""
    if not code:
        return "未设学段 no level"
    return f"{LEVELS.get(code, code)} {code}"
