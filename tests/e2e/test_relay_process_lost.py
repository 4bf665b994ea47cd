"""The relay process dies mid-lesson: the controller restarts it, raises an alert, its
agents offer their media again, and every recording spans the lesson.

Built-in relay only: on Janus there is no relay process to kill. The Janus counterparts,
the instance carrying the lesson killed or stopped, are tests/faults/test_janus_faults.py
and tests/e2e/test_lesson_on_janus.py's killed instance.
"""

from __future__ import annotations

import ast
import os
import pathlib
import signal
import time
from collections.abc import Iterator

import pytest
from benchlib.media_check import probe_recording
from benchlib.rig import LessonRig
from media_backends import builtin_only

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
LEAD, RECEIVER = "city-1-101", "village-1-201"


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[LessonRig]:
    """A controller and two enrolled, running synthetic agents."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0)
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        yield rig
    finally:
        rig.stop()


def _relay_processes(parent: int) -> list[int]:
    """The controller's relay processes (children running controller.relay.worker)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"controller.relay.worker" in cmdline:
            found.append(int(stat.parent.name))
    return found


@builtin_only(
    "no relay process on Janus; its counterparts, the instance killed or stopped mid-lesson, "
    "are tests/faults/test_janus_faults.py"
)
def test_a_killed_relay_process_is_restarted_and_the_lesson_carries_on(
    rig: LessonRig, backend: str
) -> None:
    seconds = 16.0
    lesson = rig.schedule(LEAD, [RECEIVER], 3.0, seconds)
    rig.wait_lesson(lesson["id"], ("live",), 30)
    time.sleep(3.0)
    controller = rig.procs["controller"].pid
    [relay] = rig.wait("the relay process", lambda: _relay_processes(controller), 10)
    os.kill(relay, signal.SIGKILL)
    restarted = rig.wait(
        "a new relay process",
        lambda: [p for p in _relay_processes(controller) if p != relay],
        10,
    )
    assert len(restarted) == 1
    doc = rig.wait_lesson(lesson["id"], ("uploaded", "failed"), 90)
    assert doc["state"] == "uploaded", doc["events"]
    details = [e["detail"] for e in doc["events"]]
    alerts = [d for d in details if d.startswith("ALERT media lost")]
    assert alerts == [
        f"ALERT media lost: relay process {relay} exited with status -9; restarted, "
        "agents re-offered"
    ]
    # each agent joined, then was sent its join again and offered its media anew
    assert len([d for d in details if d.endswith("cmd.join ok")]) == 4
    # the new relay process carried the rest of the lesson both ways
    [final] = [d for d in details if d.startswith("relay: ")]
    stats = ast.literal_eval(final.removeprefix("relay: "))
    assert stats[f"{LEAD}/teacher"]["frames_in"] > 60, stats
    assert stats[f"{RECEIVER}/student"]["frames_in"] > 60, stats
    for rec in doc["recordings"]:
        # received tracks keep the outage as a gap, so every file spans the whole lesson
        check = probe_recording(pathlib.Path(rec["path"]), seconds)
        assert check["ok"], (rec["classroom"], rec["track"], check["problems"], check["duration_s"])
