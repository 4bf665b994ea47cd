"""The fault suite: real lessons on loopback with one thing going wrong each time.

Run it on its own with ``.venv/bin/pytest tests/faults``; the coverage of each case is
printed at the end of the run (by ``tests/conftest.py``). The lines travel on each test's
report (user properties), so the summary is complete when pytest-xdist runs the tests in
worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fault_coverage import COVERAGE_LINES
from media_backends import janus_farm  # noqa: F401 - the Janus variants' servers


@pytest.fixture(autouse=True)
def _report_coverage(request: pytest.FixtureRequest) -> Iterator[None]:
    start = len(COVERAGE_LINES)
    yield
    for line in COVERAGE_LINES[start:]:
        request.node.user_properties.append(("fault_coverage", line))
