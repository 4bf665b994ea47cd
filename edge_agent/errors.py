"""Errors the edge agent raises at its boundaries.

Hierarchy::

    AgentError
    ├── NotEnrolled        the agent has no identity yet
    ├── EnrolmentFailed    the controller refused or did not answer an enrolment
    ├── ProfileError       a hardware profile that does not validate (names file and field)
    └── UploadFailed       storage did not accept a file
        └── InsecureUpload the controller's upload URL is not HTTPS, or no certificate
                           is pinned for it
"""


class AgentError(Exception):
    """Base of every agent error."""


class NotEnrolled(AgentError):
    """The agent has not been enrolled with a controller."""


class EnrolmentFailed(AgentError):
    """The controller refused or did not answer an enrolment."""


class ProfileError(AgentError):
    """A hardware profile that does not validate."""


class UploadFailed(AgentError):
    """Storage did not accept a file."""


class InsecureUpload(UploadFailed):
    """An upload that would leave the pinned HTTPS channel; never sent."""
