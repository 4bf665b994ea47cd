"""Errors the controller raises at its boundaries.

Hierarchy::

    ControllerError
    ├── NotFound          a classroom or lesson id that does not exist
    ├── InvalidRequest    a request that is well-formed but cannot be honoured
    │   └── RulesRefused  a lesson the scheduling rules refuse, with every reason
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


class EnrolmentRefused(ControllerError):
    """An enrolment token that is unknown, already used or expired."""
