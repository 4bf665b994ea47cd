"""NTP-style offset estimation on the control channel."""

import pytest

from edge_agent.clock import ClockEstimator


def test_offset_and_round_trip() -> None:
    clock = ClockEstimator()
    assert clock.offset_s is None
    # controller is 120 s ahead; 10 ms each way; 1 ms processing
    clock.sent(1, 1000.000)
    clock.answered(1, t2=1120.010, t3=1120.011, t4=1000.021)
    assert clock.offset_s == pytest.approx(120.0, abs=1e-6)
    assert clock.rtt_s == pytest.approx(0.020, abs=1e-6)


def test_the_least_delayed_sample_wins_and_strays_are_ignored() -> None:
    clock = ClockEstimator()
    clock.sent(1, 0.0)
    clock.answered(1, t2=0.300, t3=0.300, t4=0.310)  # queued 290 ms one way: skewed
    clock.sent(2, 1.0)
    clock.answered(2, t2=1.005, t3=1.005, t4=1.010)  # symmetric, short
    assert clock.offset_s == pytest.approx(0.0, abs=1e-9)
    clock.answered(99, t2=5, t3=5, t4=5)  # never sent: ignored
    assert clock.rtt_s == pytest.approx(0.010)
