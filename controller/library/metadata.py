"""The catalogue metadata of a library item, read from a request body and checked: each
field has a cap, and a bad one is refused naming the field (``InvalidRequestField``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from controller.common.body_fields import InvalidRequestField

# Field → (longest accepted, required). Caps follow the columns of ``LibraryItem``.
FIELDS: dict[str, tuple[int, bool]] = {
    "title": (200, True),
    "subject": (64, False),
    "grade": (32, False),
    "chapter": (200, False),
    "teacher": (64, False),
    "school": (200, False),
}


@dataclass(frozen=True)
class ItemMetadata:
    """What a provincial platform catalogues an item by: title, subject (学科), grade
    (年级), textbook chapter (教材章节), teacher and school."""

    title: str
    subject: str = ""
    grade: str = ""
    chapter: str = ""
    teacher: str = ""
    school: str = ""

    @classmethod
    def parse(cls, body: Mapping[str, Any], defaults: Mapping[str, str]) -> ItemMetadata:
        """From ``body`` (fields left out or null take ``defaults``, from the lesson)."""
        values: dict[str, str] = {}
        for name, (cap, required) in FIELDS.items():
            value = body.get(name)
            if value is None:
                value = defaults.get(name, "")
            if not isinstance(value, str):
                raise InvalidRequestField(name, value, f"text of at most {cap} characters")
            value = " ".join(value.split())  # one line: no tabs, newlines or runs of spaces
            if len(value) > cap:
                raise InvalidRequestField(
                    name, value, f"at most {cap} characters (it has {len(value)})"
                )
            if required and not value:
                raise InvalidRequestField(name, value, "given (it may not be empty)")
            values[name] = value
        return cls(**values)

    def as_dict(self) -> dict[str, str]:
        """The fields by name."""
        return asdict(self)
