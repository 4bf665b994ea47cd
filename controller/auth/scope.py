"""School scope (数据范围): which schools' classrooms, lessons, recordings and live feeds an
account may see.

An account with a school (``ConsoleUser.school``, matching ``Classroom.school``) sees only
that school's classrooms, the lessons they take part in, the recordings they made and
their live feeds; an account without one (a county inspector, scheduler) sees the county.
An admin always sees the county. Objects out of scope answer 404, as if they did not
exist, and lists leave them out. Scheduling or changing a lesson, or a network profile,
that involves another school's classroom is refused with ``OutOfScope`` (403): a county
account must do it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from controller.auth.roles import ADMIN
from controller.common.errors import InvalidRequest, NotFound, OutOfScope
from controller.db.models import AlertState, Classroom, Lesson, LessonReceiver

COUNTY_ONLY_ROLES = frozenset({ADMIN})
_Row = TypeVar("_Row", bound=Any)


@dataclass(frozen=True)
class Scope:
    """One account's scope: ``school`` None is the whole county."""

    school: str | None = None

    @classmethod
    def of(cls, role: str, school: str | None) -> Scope:
        """The scope of an account with ``role`` and ``school`` (admins: the county)."""
        return cls(None if role in COUNTY_ONLY_ROLES or not school else school)

    @property
    def county(self) -> bool:
        """Whether this scope is the whole county."""
        return self.school is None

    def describe(self) -> str:
        """'the county' or 'school X', for messages."""
        return "the county" if self.school is None else f"school {self.school!r}"

    def classroom_ids(self, db: Session) -> set[str] | None:
        """The classrooms in scope; None means every classroom."""
        if self.school is None:
            return None
        return set(db.scalars(select(Classroom.id).where(Classroom.school == self.school)))

    def classroom_filter(self) -> ColumnElement[bool] | None:
        """A WHERE term on Classroom for this scope; None means no filter."""
        return None if self.school is None else Classroom.school == self.school

    def lesson_filter(self, db: Session) -> ColumnElement[bool] | None:
        """A WHERE term on Lesson: its lead or one of its receivers is in scope."""
        rooms = self.classroom_ids(db)
        if rooms is None:
            return None
        return or_(
            Lesson.lead_classroom_id.in_(rooms),
            Lesson.id.in_(
                select(LessonReceiver.lesson_id).where(LessonReceiver.classroom_id.in_(rooms))
            ),
        )

    def sees_classroom(self, db: Session, classroom_id: str) -> bool:
        """Whether the classroom is in scope (an unknown one is not, unless county)."""
        if self.school is None:
            return True
        return db.scalar(select(Classroom.school).where(Classroom.id == classroom_id)) == (
            self.school
        )

    def sees_lesson(self, db: Session, lesson_id: str) -> bool:
        """Whether one of the lesson's classrooms is in scope."""
        where = self.lesson_filter(db)
        if where is None:
            return True
        return db.scalar(select(Lesson.id).where(Lesson.id == lesson_id, where)) is not None

    def keep(self, db: Session, classroom_ids: Iterable[str]) -> list[str]:
        """Those of ``classroom_ids`` in scope, in their order."""
        rooms = self.classroom_ids(db)
        return [c for c in classroom_ids if rooms is None or c in rooms]

    def lessons(self, db: Session, query: Select[_Row]) -> Select[_Row]:
        """``query`` (on Lesson) narrowed to the lessons in scope."""
        where = self.lesson_filter(db)
        return query if where is None else query.where(where)

    def sees_school(self, school: str) -> bool:
        """Whether ``school`` is this scope's (every school, for the county)."""
        return self.school is None or school == self.school

    def sees_any_school(self, schools: Iterable[str]) -> bool:
        """Whether one of ``schools`` (say, a pairing's) is this scope's."""
        return self.school is None or self.school in schools

    def sees_alert(self, db: Session, alert_id: str) -> bool:
        """Whether the alert's classroom is in scope (an unknown alert is not, unless county)."""
        if self.school is None:
            return True
        try:
            row = db.get(AlertState, int(alert_id))
        except (ValueError, OverflowError):
            return False
        return row is not None and self.sees_classroom(db, row.classroom_id)

    def hidden(self, what: str) -> NotFound:
        """The 404 for something out of scope, worded as for something that does not exist."""
        return NotFound(
            f"no such {what} in {self.describe()} (your account's scope; an administrator "
            "sets it with `classroom-controller user school`)"
        )

    def require(self, db: Session, classroom_ids: Iterable[str], action: str) -> None:
        """``OutOfScope`` naming the first of ``classroom_ids`` that belongs to another
        school; ``action`` says what a county account must do ("schedule it"). Unknown
        classrooms pass: the caller's own lookup answers them."""
        if self.school is None:
            return
        wanted = list(dict.fromkeys(classroom_ids))
        rows = db.execute(select(Classroom.id, Classroom.school).where(Classroom.id.in_(wanted)))
        schools = {cid: school for cid, school in rows}
        for cid in wanted:
            if cid in schools and schools[cid] != self.school:
                raise OutOfScope(
                    f"classroom {cid!r} (of school {schools[cid]!r})", self.school, action
                )

    def require_schools(self, schools: Iterable[str], action: str) -> None:
        """``OutOfScope`` naming the first of ``schools`` that is not this scope's."""
        if self.school is None:
            return
        for other in schools:
            if other != self.school:
                raise OutOfScope(f"school {other!r}", self.school, action)

    def require_lesson(self, db: Session, lesson_id: str, action: str) -> None:
        """``OutOfScope`` unless every classroom of the lesson is in scope: a lesson shared
        with another school is seen, but only a county account may change it."""
        if self.school is None:
            return
        lesson = db.get(Lesson, lesson_id)
        if lesson is not None:
            self.require(db, lesson.classroom_ids, action)


COUNTY = Scope(None)


def known_schools(db: Session) -> list[str]:
    """The schools that have recording classrooms (``Classroom.school``)."""
    return sorted(s for s in db.scalars(select(Classroom.school).distinct()) if s)


def set_school(db: Session, username: str, school: str | None) -> None:
    """Limit an account to one school's classrooms, or (``None``) let it see the county."""
    from controller.auth.accounts import get_user  # accounts imports roles, as we do

    user = get_user(db, username)
    if school is not None:
        if user.role in COUNTY_ONLY_ROLES:
            raise InvalidRequest(
                f"{username} is an {user.role}, who always sees the county; give a school to "
                "a technician, teacher, scheduler or inspector account"
            )
        schools = known_schools(db)
        if school not in schools:
            raise InvalidRequest(
                f"no classroom belongs to school {school!r}; "
                f"known schools: {', '.join(schools) or 'none yet'}"
            )
    user.school = school
    db.commit()
