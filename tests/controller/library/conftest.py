"""The console tests' real controller (one user of each role, two classrooms), for the
resource library's API and browser tests."""

from console.conftest import console, page

__all__ = ["console", "page"]
