"""The bodies of the agents' upload API that carry part checksums, in one place.

An agent computes each part's CRC32 before it asks where to send it. The controller signs
the checksum into the part's presigned URL (S3 then requires the same value in the
``x-amz-checksum-crc32`` header and refuses bytes that do not match it) and hands every
part's CRC32 to storage when it completes the upload. S3 then combines the parts'
checksums instead of checksumming the whole object again.

Every checksum is optional on the wire: an agent one version older sends none, and its
upload completes as before, without checksums.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field

# What an agent names in its open request when it will send a CRC32 with every part.
CRC32 = "crc32"
# The header a part carries its CRC32 in (S3's name; the controller's own part route too).
CRC32_HEADER = "x-amz-checksum-crc32"


def part_crc32(data: bytes) -> str:
    """The CRC32 of ``data`` in S3's form."""
    return crc32_text(zlib.crc32(data))


def crc32_text(value: int) -> str:
    """S3's form of a CRC32 (``zlib.crc32``'s value): base64 of its four big-endian bytes."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def check_crc32(value: object, where: str) -> str:
    """``value`` if it is a CRC32 in S3's form; ``ValueError`` naming ``where`` if not."""
    if isinstance(value, str) and len(value) == 8:
        try:
            if len(base64.b64decode(value, validate=True)) == 4:
                return value
        except binascii.Error:
            pass
    raise ValueError(f"{where}: crc32 must be base64 of 4 bytes (8 characters), not {value!r}")


def _part_number(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: part number must be an integer, not {json.dumps(value)[:40]}")
    return value


@dataclass(frozen=True)
class PartTargetsRequest:
    """Where to send parts ``parts``: ``{"parts": [1, 2], "crc32": {"1": "…", "2": "…"}}``."""

    parts: list[int]
    crc32: dict[int, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: object) -> PartTargetsRequest:
        """Validate a JSON body; ``ValueError`` names the field and what is expected."""
        if not isinstance(body, dict) or not isinstance(body.get("parts"), list):
            raise ValueError('body must be {"parts": [<part number>, ...], "crc32": {...}}')
        numbers = [_part_number(n, "parts") for n in body["parts"]]
        raw = body.get("crc32", {})
        if not isinstance(raw, dict):
            raise ValueError('crc32 must be an object of part number to CRC32: {"1": "…"}')
        crc32: dict[int, str] = {}
        for key, value in raw.items():
            try:
                n = int(key)
            except ValueError:
                raise ValueError(f"crc32: {key!r} is not a part number") from None
            if n not in numbers:
                raise ValueError(f"crc32: part {n} is not among the parts asked for")
            crc32[n] = check_crc32(value, f"part {n}")
        return cls(numbers, crc32)

    def to_json(self) -> dict[str, object]:
        """The wire form (no ``crc32`` when there is none)."""
        doc: dict[str, object] = {"parts": list(self.parts)}
        if self.crc32:
            doc["crc32"] = {str(n): c for n, c in sorted(self.crc32.items())}
        return doc


@dataclass(frozen=True)
class StoredPart:
    """A part storage acknowledged: its number, ETag and (if the agent sent one) CRC32."""

    n: int
    etag: str
    crc32: str | None = None


@dataclass(frozen=True)
class CompleteRequest:
    """Finish an upload: ``{"parts": [{"n": 1, "etag": "…", "crc32": "…"}, ...]}``."""

    parts: list[StoredPart]

    @classmethod
    def parse(cls, body: object) -> CompleteRequest:
        """Validate a JSON body; ``ValueError`` names the entry and what is expected."""
        if not isinstance(body, dict) or not isinstance(body.get("parts"), list):
            raise ValueError('body must be {"parts": [{"n": <int>, "etag": <str>}, ...]}')
        parts = []
        for item in body["parts"]:
            if not isinstance(item, dict) or not isinstance(item.get("n"), int):
                raise ValueError(f"part entry {json.dumps(item)[:80]} needs an integer 'n'")
            n = _part_number(item["n"], "parts")
            crc = item.get("crc32")
            parts.append(
                StoredPart(
                    n,
                    str(item.get("etag", "")),
                    None if crc is None else check_crc32(crc, f"part {n}"),
                )
            )
        return cls(parts)

    def to_json(self) -> dict[str, object]:
        """The wire form, parts in order (``crc32`` left off a part that has none)."""
        out: list[dict[str, object]] = []
        for p in sorted(self.parts, key=lambda p: p.n):
            entry: dict[str, object] = {"n": p.n, "etag": p.etag}
            if p.crc32 is not None:
                entry["crc32"] = p.crc32
            out.append(entry)
        return {"parts": out}
