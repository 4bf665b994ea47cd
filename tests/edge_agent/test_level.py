"""Microphone level meter and the silence alarm (-45 dBFS for 120 s while live)."""

from __future__ import annotations

import numpy as np

from edge_agent.media.level import SilenceAlarm, dbfs


def test_dbfs_of_known_signals() -> None:
    sine = (32767 * np.sin(np.linspace(0, 200 * np.pi, 48000))).astype(np.int16)
    assert abs(dbfs(sine) - (-3.0)) < 0.2
    assert dbfs(np.zeros(960, dtype=np.int16)) == -96.0


def test_silence_alarm_only_after_120_s_of_live_quiet() -> None:
    alarm = SilenceAlarm()
    assert not alarm.update(-60.0, 0.0, live=True)
    assert not alarm.update(-60.0, 119.0, live=True)
    assert alarm.update(-60.0, 120.5, live=True)
    assert not alarm.update(-30.0, 121.0, live=True)  # someone spoke: cleared
    assert not alarm.update(-60.0, 500.0, live=False)  # no lesson: never raised
    assert not alarm.update(-60.0, 600.0, live=True)
    assert not alarm.update(-44.0, 800.0, live=True)  # above the threshold resets too
