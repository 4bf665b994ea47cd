"""ALSA capture listing, from captured ``arecord -l`` and ``/proc/asound/cards`` text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge_agent.devices.alsa import (
    AlsaCapture,
    AlsaCard,
    list_captures,
    parse_arecord_l,
    parse_proc_cards,
)
from edge_agent.devices.errors import DeviceError

# An Intel HDA board (two capture PCMs) and a USB microphone array.
ARECORD_L = """\
**** List of CAPTURE Hardware Devices ****
card 0: PCH [HDA Intel PCH], device 0: ALC892 Analog [ALC892 Analog]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 0: PCH [HDA Intel PCH], device 2: ALC892 Alt Analog [ALC892 Alt Analog]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 1: Array [ReSpeaker 4 Mic Array], device 0: USB Audio [USB Audio]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
"""

# A Raspberry Pi with a USB conference speakerphone (card id with a hyphen, subdevices 0/1).
ARECORD_L_PI = """\
**** List of CAPTURE Hardware Devices ****
card 3: Speak410 [Jabra SPEAK 410 USB], device 0: USB Audio [USB Audio]
  Subdevices: 0/1
  Subdevice #0: subdevice #0
"""

NO_SOUNDCARDS = "arecord: device_list:274: no soundcards found...\n"

PROC_CARDS = """\
 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf7f10000 irq 32
 1 [Array          ]: USB-Audio - ReSpeaker 4 Mic Array
                      SEEED ReSpeaker 4 Mic Array at usb-0000:00:14.0-2, full speed
 2 [NVidia         ]: HDA-Intel - HDA NVidia
                      HDA NVidia at 0xf7080000 irq 17
"""

PROC_NO_CARDS = "--- no soundcards ---\n"


def test_parses_arecord_l() -> None:
    assert parse_arecord_l(ARECORD_L) == [
        AlsaCapture(0, 0, "PCH", "HDA Intel PCH", "ALC892 Analog"),
        AlsaCapture(0, 2, "PCH", "HDA Intel PCH", "ALC892 Alt Analog"),
        AlsaCapture(1, 0, "Array", "ReSpeaker 4 Mic Array", "USB Audio"),
    ]
    assert parse_arecord_l(ARECORD_L_PI) == [
        AlsaCapture(3, 0, "Speak410", "Jabra SPEAK 410 USB", "USB Audio")
    ]


def test_device_names() -> None:
    mic = parse_arecord_l(ARECORD_L)[2]
    assert mic.hw == "hw:1,0"
    assert mic.plughw == "plughw:1,0"
    assert mic.hw_by_id == "hw:CARD=Array,DEV=0"
    assert AlsaCapture(0, 2, "PCH", "HDA Intel PCH").plughw == "plughw:0,2"


def test_no_soundcards() -> None:
    assert parse_arecord_l(NO_SOUNDCARDS) == []
    assert parse_arecord_l("") == []
    assert parse_arecord_l("**** List of CAPTURE Hardware Devices ****\n") == []


def test_parses_proc_cards() -> None:
    assert parse_proc_cards(PROC_CARDS) == [
        AlsaCard(0, "PCH", "HDA-Intel", "HDA Intel PCH"),
        AlsaCard(1, "Array", "USB-Audio", "ReSpeaker 4 Mic Array"),
        AlsaCard(2, "NVidia", "HDA-Intel", "HDA NVidia"),
    ]
    assert parse_proc_cards(PROC_NO_CARDS) == []


def _fake_arecord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "arecord"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])


def test_list_captures_without_arecord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert list_captures() == []


def test_list_captures_runs_arecord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text(ARECORD_L)
    _fake_arecord(tmp_path, monkeypatch, f'[ "$1" = "-l" ] || exit 2\ncat {sample}\n')
    assert [c.hw for c in list_captures()] == ["hw:0,0", "hw:0,2", "hw:1,0"]


@pytest.mark.parametrize("exit_code", [0, 1])
def test_list_captures_with_no_soundcards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int
) -> None:
    _fake_arecord(tmp_path, monkeypatch, f'echo "{NO_SOUNDCARDS.strip()}" >&2\nexit {exit_code}\n')
    assert list_captures() == []


def test_list_captures_other_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_arecord(
        tmp_path,
        monkeypatch,
        'echo "ALSA lib conf.c:4553:(snd_config_update_r) Cannot access file x" >&2\nexit 1\n',
    )
    with pytest.raises(DeviceError, match=r"arecord -l failed \(exit 1\): ALSA lib"):
        list_captures()
