"""Rates for heartbeats."""

from edge_agent.media.rates import RateMeter


def test_rates_between_calls() -> None:
    meter = RateMeter()
    assert meter.rates("t", 0, 0, now=10.0) == (0.0, 0.0)
    assert meter.rates("t", 60, 500_000, now=12.0) == (30.0, 2_000_000.0)
    assert meter.rates("t", 10, 0, now=13.0) == (0.0, 0.0)  # counters reset: no negative rate
