"""Errors of the controller database at start-up.

Hierarchy::

    ControllerError
    └── DatabaseError          the database named by --database cannot be used
        ├── DatabaseUnreachable  no answer (refused, timed out) after every retry
        └── DatabaseRefused      it answered no: wrong password, unknown user or database

Every message names the database by its URL with the password hidden.
"""

from __future__ import annotations

from controller.common.errors import ControllerError


class DatabaseError(ControllerError):
    """The controller database cannot be used."""


class DatabaseUnreachable(DatabaseError):
    """The database did not answer within the time allowed for start-up."""


class DatabaseRefused(DatabaseError):
    """The database answered but refused us; trying again would not help."""
