"""ALSA microphones: which capture devices a machine has and how to name them.

The capture devices come from ``arecord -l``; the card list in ``/proc/asound/cards`` is
parsed too, for status reports. Both parsers work on text so they are tested from captured
output; only ``list_captures`` touches the machine, and a machine with no sound at all
simply has no captures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from edge_agent.devices.errors import DeviceError

__all__ = [
    "AlsaCapture",
    "AlsaCard",
    "list_captures",
    "parse_arecord_l",
    "parse_proc_cards",
]

ARECORD_TIMEOUT_S = 5.0

# card 1: Array [ReSpeaker 4 Mic Array], device 0: USB Audio [USB Audio]
_ARECORD_LINE = re.compile(
    r"^card\s+(?P<card>\d+):\s*(?P<id>\S+)\s+\[(?P<name>[^\]]*)\],\s*"
    r"device\s+(?P<dev>\d+):\s*(?P<devid>.*?)\s*\[(?P<devname>[^\]]*)\]\s*$"
)
#  1 [Array          ]: USB-Audio - ReSpeaker 4 Mic Array
_PROC_CARD_LINE = re.compile(
    r"^\s*(?P<card>\d+)\s+\[(?P<id>[^\]]*)\]:\s*(?P<driver>\S+)\s+-\s+(?P<name>.*?)\s*$"
)


@dataclass(frozen=True)
class AlsaCapture:
    """One PCM capture device of one sound card.

    ``card_id`` is the card's short id (stable across reboots, unlike the index), ``name``
    the card's long name and ``device_name`` the name of this PCM on the card.
    """

    card: int
    device: int
    card_id: str
    name: str
    device_name: str = ""

    @property
    def hw(self) -> str:
        """The raw hardware PCM by index, e.g. ``hw:1,0``."""
        return f"hw:{self.card},{self.device}"

    @property
    def plughw(self) -> str:
        """The same PCM behind ALSA's format/rate conversion, e.g. ``plughw:1,0``."""
        return f"plughw:{self.card},{self.device}"

    @property
    def hw_by_id(self) -> str:
        """The raw PCM by card id, e.g. ``hw:CARD=Array,DEV=0``; survives USB reordering."""
        return f"hw:CARD={self.card_id},DEV={self.device}"


@dataclass(frozen=True)
class AlsaCard:
    """One sound card as ``/proc/asound/cards`` lists it."""

    card: int
    card_id: str
    driver: str
    name: str


def parse_arecord_l(text: str) -> list[AlsaCapture]:
    """The capture devices listed by ``arecord -l`` (none for "no soundcards found")."""
    captures: list[AlsaCapture] = []
    for line in text.splitlines():
        found = _ARECORD_LINE.match(line.strip())
        if found:
            captures.append(
                AlsaCapture(
                    card=int(found["card"]),
                    device=int(found["dev"]),
                    card_id=found["id"],
                    name=found["name"].strip(),
                    device_name=found["devname"].strip(),
                )
            )
    return captures


def parse_proc_cards(text: str) -> list[AlsaCard]:
    """The sound cards in ``/proc/asound/cards`` (none for "--- no soundcards ---").

    Each card takes two lines there; the second (bus details) is skipped.
    """
    cards: list[AlsaCard] = []
    for line in text.splitlines():
        found = _PROC_CARD_LINE.match(line)
        if found:
            cards.append(
                AlsaCard(
                    card=int(found["card"]),
                    card_id=found["id"].strip(),
                    driver=found["driver"],
                    name=found["name"],
                )
            )
    return cards


def list_captures(*, timeout_s: float = ARECORD_TIMEOUT_S) -> list[AlsaCapture]:
    """The machine's capture devices, from ``arecord -l``.

    Returns [] when arecord is not installed or finds no sound cards. Raises DeviceError
    only when arecord itself fails for another reason or hangs.
    """
    exe = shutil.which("arecord")
    if exe is None:
        return []
    try:
        done = subprocess.run(
            [exe, "-l"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            # arecord's messages are translated; "no soundcards found" is matched below.
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"arecord -l did not answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise DeviceError(f"could not run arecord: {exc}") from exc
    captures = parse_arecord_l(done.stdout)
    if done.returncode != 0 and not captures and "no soundcards" not in done.stderr:
        reason = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "no message"
        raise DeviceError(f"arecord -l failed (exit {done.returncode}): {reason}")
    return captures
