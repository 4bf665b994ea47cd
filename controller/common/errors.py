"""Errors the controller raises at its boundaries.

Hierarchy::

    ControllerError
    ├── NotFound          a classroom or lesson id that does not exist
    ├── InvalidRequest    a request that is well-formed but cannot be honoured
    │   ├── RulesRefused  a lesson the scheduling rules refuse, with every reason
    │   ├── WrongState    the lesson is not in a state that allows it (HTTP 409)
    │   └── NotInLesson   a classroom named that has no such part in the lesson (HTTP 422)
    │       └── NotLead   a room's floor keys, but it is not the lesson's lead classroom
    ├── NotYours          a classroom acting on a lesson that is not its own (HTTP 403)
    ├── OutOfScope        a school-scoped account naming another school's classroom (HTTP 403)
    └── EnrolmentRefused  a token that is unknown, used or expired
"""


class ControllerError(Exception):
    """Base of every controller error."""


class NotFound(ControllerError):
    """A classroom or lesson that does not exist."""


class InvalidRequest(ControllerError):
    """A request that cannot be honoured as asked."""


class RulesRefused(InvalidRequest):
    """A lesson the scheduling rules refuse; ``problems`` holds (code, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class WrongState(InvalidRequest):
    """A change the lesson's present state does not allow (answered as 409)."""


class NotInLesson(InvalidRequest):
    """A classroom that does not have the part in the lesson the request needs (422)."""


class NotLead(NotInLesson):
    """A floor change from a classroom's keys, but it is not the lesson's lead."""


class NotYours(ControllerError):
    """A classroom acting on a lesson it takes no part in (answered as 403)."""


class OutOfScope(ControllerError):
    """A school-scoped account scheduling or changing something that involves another
    school's classroom or school (answered as 403); the message says who must do it."""

    def __init__(self, what: str, school: str, action: str) -> None:
        super().__init__(
            f"{what} is outside school {school!r}, the one your account is limited to; "
            f"a county account (one without a school) must {action}"
        )
        self.what = what
        self.school = school


class EnrolmentRefused(ControllerError):
    """An enrolment token that is unknown, already used or expired."""
