"""Helpers on H.264 Annex-B byte streams: NAL splitting, keyframe and parameter-set lookup."""

from __future__ import annotations

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


def split_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B buffer, without their start codes."""
    units: list[bytes] = []
    i, n = 0, len(data)
    start = -1
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                end = i - 1 if i > 0 and data[i - 1] == 0 else i
                units.append(data[start:end])
            i += 3
            start = i
            continue
        i += 1
    if start >= 0 and start < n:
        units.append(data[start:])
    return [u for u in units if u]


def nal_type(nal: bytes) -> int:
    """The NAL unit type (low five bits of the header byte)."""
    return nal[0] & 0x1F if nal else -1


def is_keyframe(data: bytes) -> bool:
    """Whether an access unit carries an IDR slice or a sequence parameter set."""
    return any(nal_type(u) in (NAL_IDR, NAL_SPS) for u in split_nal_units(data))


def parameter_sets(data: bytes) -> bytes | None:
    """Annex-B SPS and PPS from a keyframe access unit, or None if it has none."""
    sets = [u for u in split_nal_units(data) if nal_type(u) in (NAL_SPS, NAL_PPS)]
    if not any(nal_type(u) == NAL_SPS for u in sets):
        return None
    return b"".join(b"\x00\x00\x00\x01" + u for u in sets)
