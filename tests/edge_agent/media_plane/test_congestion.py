"""The uplink estimator's rule, report by report (no network: the reports are made up)."""

from __future__ import annotations

import pytest

from edge_agent.media.adaptation import CONGESTED, HEADROOM_UP
from edge_agent.media_plane.congestion import (
    DELAY_BACKOFF,
    DRAIN,
    GROW,
    HEADROOM,
    RateMeter,
    UplinkEstimator,
)

SENDING = 1_000_000


def test_heavy_loss_estimates_what_got_through_less_room_to_drain() -> None:
    est = UplinkEstimator()
    assert est.report(SENDING, 0.6, 0.01) == int(SENDING * (1.0 - 0.6) * DRAIN)


def test_loss_at_the_threshold_is_congestion_for_the_adapter() -> None:
    est = UplinkEstimator()
    # 10 % loss must read as congestion by the adapter's own rule, or it would never step.
    assert est.report(SENDING, 0.10, 0.01) < CONGESTED * SENDING


def test_a_clean_link_grows_a_step_at_a_time_up_to_half_again_the_rate() -> None:
    est = UplinkEstimator()
    seen = [est.report(SENDING, 0.0, 0.01) for _ in range(10)]
    assert seen[0] == int(SENDING * GROW)
    assert seen == sorted(seen)
    assert seen[-1] == int(SENDING * HEADROOM)
    # Enough clean reports take the estimate over the adapter's bar for climbing.
    assert seen[-1] >= HEADROOM_UP * SENDING


def test_growth_after_a_loss_starts_from_the_loss_estimate_not_the_top() -> None:
    est = UplinkEstimator()
    for _ in range(10):
        est.report(SENDING, 0.0, 0.01)
    low = est.report(SENDING, 0.5, 0.01)
    # Stepped down to 400 kbps, a clean report grows from the loss estimate, not the top.
    assert low == 450_000
    assert est.report(400_000, 0.0, 0.01) == int(low * GROW)
    # ... and never past half again what is sent.
    assert est.report(300_000, 0.0, 0.01) == int(300_000 * HEADROOM)


def test_some_loss_holds_the_estimate() -> None:
    est = UplinkEstimator()
    first = est.report(SENDING, 0.0, 0.01)
    assert est.report(SENDING, 0.05, 0.01) == first
    assert est.report(SENDING * 2, 0.05, 0.01) == first
    assert UplinkEstimator().report(SENDING, 0.05, 0.01) == SENDING  # nothing to hold: the rate


def test_a_rising_round_trip_over_the_base_is_a_filling_queue() -> None:
    est = UplinkEstimator()
    est.report(SENDING, 0.0, 0.010)
    assert est.report(SENDING, 0.0, 0.100) > SENDING  # 90 ms over: not yet
    assert est.report(SENDING, 0.0, 0.200) == int(SENDING * DELAY_BACKOFF)
    assert est.min_rtt_s == pytest.approx(0.010)


def test_a_high_round_trip_that_falls_or_repeats_is_not_new_congestion() -> None:
    est = UplinkEstimator()
    est.report(SENDING, 0.0, 0.010)
    est.report(SENDING, 0.0, 0.300)  # queue filling: backed off
    # aiortc repeats the last round trip until a report echoes a sender report again.
    assert est.report(400_000, 0.0, 0.300) > 400_000
    assert est.report(400_000, 0.0, 0.250) > 400_000  # draining


def test_no_round_trip_yet_still_uses_the_loss() -> None:
    est = UplinkEstimator()
    assert est.report(SENDING, 0.0, None) == int(SENDING * GROW)
    assert est.report(SENDING, 0.5, None) == int(SENDING * (1.0 - 0.5) * DRAIN)


def test_remb_caps_the_estimate_and_stands_in_before_any_report() -> None:
    est = UplinkEstimator()
    assert est.remb(0) is None  # no cap, no estimate: nothing to say
    assert est.remb(400_000) == 400_000
    assert est.report(SENDING, 0.0, 0.01) == 400_000
    assert est.report(SENDING, 0.8, 0.01) == int(SENDING * (1.0 - 0.8) * DRAIN)  # under the cap
    assert est.remb(100_000) == 100_000
    assert est.remb(0) == int(SENDING * (1.0 - 0.8) * DRAIN)  # a cap of 0 lifts it


def test_rate_meter_needs_half_a_second_and_forgets_after_two() -> None:
    meter = RateMeter()
    assert meter.rate(0.0, 0) is None
    assert meter.rate(0.4, 50_000) is None
    assert meter.rate(1.0, 125_000) == 1_000_000
    meter.rate(2.0, 250_000)
    meter.rate(3.0, 375_000)
    # Past the window the old samples go: the rate follows a drop within two seconds.
    assert meter.rate(4.0, 400_000) == int((400_000 - 250_000) * 8 / 2)
    assert meter.rate(5.0, 425_000) == int((425_000 - 375_000) * 8 / 2)
