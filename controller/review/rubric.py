"""The rubric a lesson is scored against: criteria, each with a label and its points.

The county sets its own (``PUT /api/v1/review/rubric``, admin); until it does, the default
follows the usual shape of a synchronous-lesson observation form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.common.body_fields import InvalidRequestField
from controller.common.errors import InvalidRequest

MAX_CRITERIA = 20
MAX_POINTS = 100
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Criterion:
    """One line of the rubric."""

    id: str
    label_zh: str
    label_en: str
    points: int  # the most a lesson can be given on it

    def document(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "points": self.points,
        }


DEFAULT: tuple[Criterion, ...] = (
    Criterion("goals", "教学目标", "Teaching goals", 20),
    Criterion("delivery", "教学过程", "Teaching process", 30),
    Criterion("interaction", "两端互动", "Interaction between the rooms", 30),
    Criterion("media", "音视频与技术保障", "Sound, picture and technical support", 20),
)


def parse_criteria(raw: Any) -> tuple[Criterion, ...]:
    """Criteria from a JSON list, or ``InvalidRequest`` naming the item and field."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestField("criteria", raw, "a non-empty list of criteria")
    if len(raw) > MAX_CRITERIA:
        raise InvalidRequest(f"a rubric has at most {MAX_CRITERIA} criteria, not {len(raw)}")
    out: list[Criterion] = []
    for n, item in enumerate(raw):
        where = f"criteria[{n}]"
        if not isinstance(item, dict):
            raise InvalidRequestField(where, item, '{"id", "label_zh", "label_en", "points"}')
        unknown = sorted(set(item) - {"id", "label_zh", "label_en", "points"})
        if unknown:
            raise InvalidRequest(f"{where}: unknown field(s) {', '.join(unknown)}")
        cid, points = item.get("id"), item.get("points")
        if not isinstance(cid, str) or not _ID.match(cid):
            raise InvalidRequestField(f"{where}.id", cid, "lower-case letters, digits, - or _")
        for field in ("label_zh", "label_en"):
            label = item.get(field)
            if not isinstance(label, str) or not 0 < len(label.strip()) <= 100:
                raise InvalidRequestField(f"{where}.{field}", label, "a label of 1-100 characters")
        if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
            raise InvalidRequestField(f"{where}.points", points, f"a whole number 1-{MAX_POINTS}")
        if any(c.id == cid for c in out):
            raise InvalidRequest(f"{where}: criterion id {cid!r} is used twice")
        out.append(Criterion(cid, item["label_zh"].strip(), item["label_en"].strip(), points))
    return tuple(out)
