"""Compact bookkeeping of which burned-in frame counters were seen, and latency samples."""

from __future__ import annotations

import math


class CounterSet:
    """A set of frame counters stored as sorted inclusive runs."""

    def __init__(self) -> None:
        self._runs: list[list[int]] = []

    def add(self, counter: int) -> None:
        """Record one counter (mostly arriving in order)."""
        runs = self._runs
        if runs and runs[-1][0] <= counter <= runs[-1][1]:
            return
        if runs and counter == runs[-1][1] + 1:
            runs[-1][1] = counter
            return
        if not runs or counter > runs[-1][1]:
            runs.append([counter, counter])
            return
        # out of order: rebuild (rare)
        values = {counter}
        for lo, hi in runs:
            values.update(range(lo, hi + 1))
        self._runs = _runs_of(sorted(values))

    def count_between(self, first: int, last: int) -> int:
        """How many counters in [first, last] were seen."""
        total = 0
        for lo, hi in self._runs:
            lo2, hi2 = max(lo, first), min(hi, last)
            if lo2 <= hi2:
                total += hi2 - lo2 + 1
        return total

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._runs)

    @property
    def runs(self) -> list[tuple[int, int]]:
        """The inclusive runs."""
        return [(lo, hi) for lo, hi in self._runs]

    @classmethod
    def from_runs(cls, runs: list[tuple[int, int]]) -> CounterSet:
        """Rebuild from runs (as reported over the wire)."""
        out = cls()
        out._runs = [[lo, hi] for lo, hi in sorted(runs)]
        return out


def _runs_of(values: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def percentile(samples: list[float], pct: float) -> float | None:
    """Nearest-rank percentile, or None with no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]
