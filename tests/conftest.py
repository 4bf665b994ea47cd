"""Shared fixtures: a controller daemon on loopback ports."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from helpers import free_port_pair

from controller.daemon import ControllerConfig, ControllerDaemon


@pytest.fixture
def controller_config(tmp_path: pathlib.Path) -> ControllerConfig:
    """Config for a controller on free loopback ports with a fast heartbeat."""
    return ControllerConfig(
        state_dir=tmp_path / "controller",
        control_port=free_port_pair(),
        http_port=0,
        heartbeat_s=0.3,
        prepare_s=2.0,
    )


@pytest.fixture
async def controller(controller_config: ControllerConfig) -> AsyncIterator[ControllerDaemon]:
    """A running controller daemon."""
    daemon = ControllerDaemon(controller_config)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


# The fault suite's real lessons run one after another on one pytest-xdist worker; the
# rest of the suite (including the other end-to-end lessons) shares the other.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the fault suite together on one worker (``--dist loadgroup``)."""
    for item in items:
        if item.get_closest_marker("faults") is not None:
            item.add_marker(pytest.mark.xdist_group("faults"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the coverage each fault case measured (tests/faults/conftest.py collects it)."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", [])
        if name == "fault_coverage"
    ]
    if lines:
        terminalreporter.section("fault suite coverage")
        for line in dict.fromkeys(lines):  # call and teardown reports both carry them
            terminalreporter.write_line(str(line))
