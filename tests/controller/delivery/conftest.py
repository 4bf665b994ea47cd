"""The console tests' real controller (one user of each role, two classrooms), for the
delivery lessons' API tests."""

from console.conftest import console

__all__ = ["console"]
