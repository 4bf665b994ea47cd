"""The synthetic microphone's clicks fall on whole seconds of the wall clock."""

from __future__ import annotations

import numpy as np

from edge_agent.devices.synthetic import AUDIO_SAMPLES, SyntheticMicrophone


def test_click_starts_on_the_whole_second_of_the_capture_clock() -> None:
    mic = SyntheticMicrophone()
    # A frame captured 5 ms before a whole second: the click starts 240 samples in.
    pcm = mic.frame(7, capture_ms=1_795_000_000_995.0).to_ndarray().reshape(-1)
    loud = np.flatnonzero(np.abs(pcm) > 20000)
    assert loud[0] == 240 and loud[-1] < 240 + 480
    # A frame inside the second has no click at all, whatever its index.
    quiet = mic.frame(50, capture_ms=1_795_000_000_400.0).to_ndarray().reshape(-1)
    assert np.abs(quiet).max() < 10000 and quiet.size == AUDIO_SAMPLES
