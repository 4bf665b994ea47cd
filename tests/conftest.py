"""Shared fixtures: a controller daemon on loopback ports."""

from __future__ import annotations

import faulthandler
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator

import pytest
from helpers import free_port_pair

from controller.app.daemon import ControllerConfig, ControllerDaemon


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


# scripts/test_phase.py sends SIGUSR1 to a phase that overran its deadline: every thread's
# stack is then written, even one stuck in a C call that holds the interpreter, to a file
# of this process's in the folder it names (pytest's capture owns stderr meanwhile).
_STACKS_DIR = os.environ.get("CLASSBRIDGE_STACKS_DIR")
_stacks_file = (
    open(pathlib.Path(_STACKS_DIR) / f"{os.getpid()}.txt", "w")  # noqa: SIM115 (kept open)
    if _STACKS_DIR
    else sys.__stderr__
)
if _stacks_file is not None:
    faulthandler.register(signal.SIGUSR1, file=_stacks_file, all_threads=True)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A native crash (SIGSEGV, SIGABRT, SIGBUS) writes every thread's stack to the
    stacks file too: xdist reports only "worker crashed" and drops the worker's stderr,
    and scripts/test_phase.py prints the stacks files that are not empty. (After
    pytest's own faulthandler set-up, which would otherwise point it back at stderr.)"""
    if _STACKS_DIR and _stacks_file is not None:
        faulthandler.enable(file=_stacks_file, all_threads=True)


# pytest-timeout's timer is a Python thread: a test stuck in a C call that holds the GIL
# (a codec freeing its frame threads, say) stops the timer too, and the whole run then waits
# for the phase's deadline. faulthandler's own watchdog needs no GIL, so each test also gets
# one, a minute after its pytest-timeout limit: it writes every thread's stack to the stacks
# file and ends the process (xdist then reports the worker as crashed in that test, and goes
# on with a new one).
WATCHDOG_MARGIN_S = 60.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> object:
    """Arm the GIL-free watchdog for one test's set-up, call and teardown."""
    marker = item.get_closest_marker("timeout")
    limit = (
        float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout"))
    )
    if _stacks_file is not None and limit > 0:
        # pytest-timeout's limit covers set-up, call and teardown together (func_only off)
        faulthandler.dump_traceback_later(limit + WATCHDOG_MARGIN_S, exit=True, file=_stacks_file)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


EXIT_GRACE_S = float(os.environ.get("CLASSBRIDGE_EXIT_GRACE_S", "60"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the session's result for the exit guard below."""
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Make sure the process ends once its tests have.

    A thread a test left running that is not a daemon (a blocking read in an executor, a
    server's loop) keeps a Python process alive at exit, with no test to blame and no
    report. So once the session is over,
    a watchdog gives the process a minute to exit, then prints the threads still running
    and ends it with the session's own result.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A worker stays up, serving its gateway, until the whole run is over, and xdist
        # ends a worker that does not exit by then itself: only the main process is guarded.
        return
    status = config.stash.get(_EXIT_STATUS, 1)

    def guard() -> None:
        time.sleep(EXIT_GRACE_S)
        print(
            f"\n=== pytest (pid {os.getpid()}) had not exited {EXIT_GRACE_S:.0f} s after its "
            "session ended; the threads that kept it alive: ===",
            file=sys.__stderr__,
            flush=True,
        )
        faulthandler.dump_traceback(file=sys.__stderr__ or 2, all_threads=True)
        os._exit(status)

    threading.Thread(target=guard, name="exit-guard", daemon=True).start()
