"""The upload API's checksum-carrying bodies: S3's CRC32 form, the wire forms both sides
share, and refusals that name the field."""

from __future__ import annotations

import pytest

from protocols.uploads import (
    CompleteRequest,
    PartTargetsRequest,
    StoredPart,
    check_crc32,
    part_crc32,
)


def test_crc32_is_s3s_form_base64_of_the_big_endian_value() -> None:
    assert part_crc32(b"hello") == "NhCmhg=="  # zlib.crc32(b"hello") == 0x3610A686
    assert part_crc32(b"") == "AAAAAA=="
    assert check_crc32("NhCmhg==", "part 1") == "NhCmhg=="


@pytest.mark.parametrize("bad", ["", "NhCmhg=", "NhCmhg==AA", "!!!!!!==", 123, None])
def test_a_malformed_crc32_is_refused_by_name(bad: object) -> None:
    with pytest.raises(ValueError, match="part 3: crc32 must be base64 of 4 bytes"):
        check_crc32(bad, "part 3")


def test_targets_request_wire_form_with_and_without_checksums() -> None:
    ask = PartTargetsRequest([1, 2], {2: "NhCmhg==", 1: "AAAAAA=="})
    assert ask.to_json() == {"parts": [1, 2], "crc32": {"1": "AAAAAA==", "2": "NhCmhg=="}}
    assert PartTargetsRequest.parse(ask.to_json()) == ask
    # An agent one version older sends the numbers only.
    assert PartTargetsRequest.parse({"parts": [3]}) == PartTargetsRequest([3])
    assert PartTargetsRequest([3]).to_json() == {"parts": [3]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1, 2], 'body must be {"parts"'),
        ({"parts": ["1"]}, "part number must be an integer"),
        ({"parts": [True]}, "part number must be an integer"),
        ({"parts": [1], "crc32": ["AAAAAA=="]}, "crc32 must be an object"),
        ({"parts": [1], "crc32": {"x": "AAAAAA=="}}, "'x' is not a part number"),
        ({"parts": [1], "crc32": {"2": "AAAAAA=="}}, "part 2 is not among the parts asked"),
        ({"parts": [1], "crc32": {"1": "AAAA"}}, "part 1: crc32 must be base64"),
    ],
)
def test_targets_request_refusals_name_the_problem(body: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("{", r"\{")):
        PartTargetsRequest.parse(body)


def test_complete_request_wire_form_in_part_order_with_optional_crc32() -> None:
    done = CompleteRequest([StoredPart(2, '"b"', "NhCmhg=="), StoredPart(1, '"a"')])
    assert done.to_json() == {
        "parts": [{"n": 1, "etag": '"a"'}, {"n": 2, "etag": '"b"', "crc32": "NhCmhg=="}]
    }
    assert sorted(CompleteRequest.parse(done.to_json()).parts, key=lambda p: p.n) == [
        StoredPart(1, '"a"'),
        StoredPart(2, '"b"', "NhCmhg=="),
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"parts": 1}, "body must be"),
        ({"parts": [{"etag": "a"}]}, "needs an integer 'n'"),
        ({"parts": [{"n": 1, "etag": "a", "crc32": "x"}]}, "part 1: crc32 must be base64"),
    ],
)
def test_complete_request_refusals_name_the_problem(body: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        CompleteRequest.parse(body)
