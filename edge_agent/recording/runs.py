"""The run log of a lesson recording: when the agent's recorder started and stopped.

``runs.jsonl`` in the lesson directory gets a line when a run starts and one when it
stops cleanly. A run with no stop line ended with the process (``kill -9``, a crash, a
power cut). The seconds between such a run's last media and the next run's start are a
gap with the reason ``agent_not_running``.
"""

from __future__ import annotations

import itertools
import json
import logging
import pathlib

from protocols.manifest import GapEntry, RunEntry

log = logging.getLogger(__name__)


def read_runs(directory: pathlib.Path) -> list[RunEntry]:
    """Runs in order; a torn last line (killed mid-write) is skipped."""
    runs: list[RunEntry] = []
    path = directory / "runs.jsonl"
    if not path.exists():
        return runs
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            doc = json.loads(line)
        except ValueError:
            log.warning("%s:%d: unreadable run line skipped", path, number)
            continue
        if "started_s" in doc:
            runs.append(RunEntry(started_s=float(doc["started_s"]), pid=int(doc.get("pid", 0))))
        elif "ended_s" in doc and runs and runs[-1].ended_s is None:
            runs[-1].ended_s = float(doc["ended_s"])
    return runs


def gaps_between_runs(runs: list[RunEntry], segment_ends: list[float]) -> list[GapEntry]:
    """When the agent was not running between consecutive runs."""
    gaps = []
    for before, after in itertools.pairwise(runs):
        if before.ended_s is not None:
            start = before.ended_s
            detail = "the agent was stopped and started again"
        else:
            written = [e for e in segment_ends if before.started_s <= e <= after.started_s]
            start = max(written, default=before.started_s)
            detail = "the agent process ended without stopping (killed or crashed)"
        if after.started_s > start:
            gaps.append(
                GapEntry(
                    track="*",
                    start_s=round(start, 3),
                    end_s=round(after.started_s, 3),
                    reason="agent_not_running",
                    detail=f"{detail}; it restarted {after.started_s - start:.1f} s later",
                )
            )
    return gaps
