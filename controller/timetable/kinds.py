"""The five lesson kinds of the three-classrooms programme and the rules each follows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindRule:
    """How a lesson kind is shaped."""

    label: str
    two_way: bool  # receivers are seen and heard back (they publish a student camera)
    min_receivers: int
    max_receivers: int  # the national guidance asks that receivers per lead be limited


DEFAULT_RULES: dict[str, KindRule] = {
    "synchronous": KindRule("synchronous lesson (1+1 dual-teacher, 同步课堂)", True, 1, 3),
    "delivery": KindRule("delivery lesson (专递课堂)", True, 1, 3),
    "master_teacher": KindRule("master-teacher lesson (名师课堂)", False, 1, 30),
    "open_school": KindRule("open school lesson (名校网络课堂)", False, 0, 200),
    "research": KindRule("teacher research session (教师网络研修)", True, 1, 8),
}
KINDS = tuple(DEFAULT_RULES)
# The names a county office writes in its own files (the programme's Chinese names).
KIND_ALIASES: dict[str, str] = {
    "同步课堂": "synchronous",
    "1+1双师课堂": "synchronous",
    "双师课堂": "synchronous",
    "专递课堂": "delivery",
    "名师课堂": "master_teacher",
    "名校网络课堂": "open_school",
    "教师网络研修": "research",
    "网络教研": "research",
}


def canonical_kind(name: str) -> str:
    """A kind as written in a file or form (English or Chinese, any case) as its key;
    unknown names come back as given, for the caller to refuse with the valid ones."""
    cleaned = name.strip()
    return KIND_ALIASES.get(cleaned.replace(" ", ""), cleaned.lower())


def kind_rule(kind: str, rules: dict[str, KindRule] | None = None) -> KindRule:
    """The rule for ``kind``; ValueError names the valid kinds."""
    table = rules or DEFAULT_RULES
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"unknown lesson kind {kind!r}; use one of {', '.join(table)}") from None
