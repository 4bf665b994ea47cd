"""Burned-in stamps survive H.264; counter bookkeeping and percentiles."""

from __future__ import annotations

import av
import numpy as np

from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.media import barcode
from edge_agent.media.counters import CounterSet, percentile
from edge_agent.media.encoders import VideoEncoder


def test_stamp_round_trip_and_damage_is_detected() -> None:
    plane = np.zeros((360, 640), np.uint8)
    barcode.stamp(plane, 123456, 1_795_000_000_123)
    assert barcode.read(plane) == (123456, 1_795_000_000_123)
    plane[20:30, 100:110] = 255 - plane[20:30, 100:110]  # flip a block
    assert barcode.read(plane) is None
    assert barcode.read(np.zeros((20, 20), np.uint8)) is None


def test_stamp_survives_low_bitrate_h264() -> None:
    camera = SyntheticCamera(640, 360, 30, "student")
    encoder = VideoEncoder(640, 360, 30, 300_000, preset="ultrafast")
    decoder = av.CodecContext.create("h264", "r")
    read = total = 0
    for i in range(90):
        for enc in encoder.encode(camera.frame(i, 1_795_000_000_000 + i), 0):
            for frame in decoder.decode(av.Packet(enc.data)):
                total += 1
                stamp = barcode.read(frame.to_ndarray()[:360])
                read += stamp is not None and stamp[1] - stamp[0] == 1_795_000_000_000
    assert total >= 85 and read >= 0.99 * total


def test_counter_set_runs_and_counts() -> None:
    seen = CounterSet()
    for c in [*range(0, 10), *range(12, 20), 11, 5]:
        seen.add(c)
    assert seen.runs == [(0, 9), (11, 19)]
    assert len(seen) == 19
    assert seen.count_between(5, 12) == 7
    assert CounterSet.from_runs(seen.runs).runs == seen.runs


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(i) for i in range(1, 101)], 50) == 50.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
