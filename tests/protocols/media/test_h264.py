"""The Annex-B helpers agree with a plain byte-by-byte reading on any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.media.h264 import NAL_IDR, NAL_SPS, is_keyframe, nal_type, split_nal_units


def _reference_split(data: bytes) -> list[bytes]:
    """The straightforward reading: walk the bytes, cut at each 00 00 01."""
    units: list[bytes] = []
    i, n, start = 0, len(data), -1
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                units.append(data[start : i - 1 if i > 0 and data[i - 1] == 0 else i])
            i += 3
            start = i
            continue
        i += 1
    if 0 <= start < n:
        units.append(data[start:])
    return [u for u in units if u]


# Mostly zeros, ones and NAL headers, so start codes of three and four bytes, empty units
# and truncated tails all turn up often.
_bytes = st.lists(st.sampled_from([0, 0, 0, 1, 0x65, 0x67, 0x68, 0x41, 0x06, 0xFF]), max_size=64)


@given(_bytes)
def test_split_and_keyframe_match_the_reference(values: list[int]) -> None:
    data = bytes(values)
    units = split_nal_units(data)
    assert units == _reference_split(data)
    assert is_keyframe(data) == any(nal_type(u) in (NAL_IDR, NAL_SPS) for u in units)


def test_a_real_access_unit() -> None:
    sps, pps, idr = b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00\x33"
    key = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps + b"\x00\x00\x01" + idr
    assert split_nal_units(key) == [sps, pps, idr]
    assert is_keyframe(key)
    assert not is_keyframe(b"\x00\x00\x00\x01\x41\x9a\x00\x10")
    assert not is_keyframe(b"") and split_nal_units(b"") == []
