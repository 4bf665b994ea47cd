"""The fault suite: real lessons on loopback with one thing going wrong each time.

Run it on its own with ``.venv/bin/pytest tests/faults``; the coverage of each case is
printed at the end of the run.
"""

from __future__ import annotations

import pytest
from fault_coverage import COVERAGE_LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the coverage each fault case measured."""
    if COVERAGE_LINES:
        terminalreporter.section("fault suite coverage")
        for line in COVERAGE_LINES:
            terminalreporter.write_line(line)
