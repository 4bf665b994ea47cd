"""A burned-in frame counter and capture timestamp that survive H.264 compression.

96 bits — a 32-bit counter, a 48-bit capture time in ms and a 16-bit CRC — drawn as
16×16-pixel black/white blocks, 32 per row in 3 rows (a 512×48 region at the top left);
frames narrower than 512 px get 8×8 blocks (256×24). Blocks aligned to macroblocks keep
their level even at low bitrates.
"""

from __future__ import annotations

import numpy as np

BLOCK = 16
SMALL_BLOCK = 8
PER_ROW = 32
ROWS = 3
BITS = PER_ROW * ROWS
BLACK, WHITE = 16, 235
HEIGHT = BLOCK * ROWS  # rows the code may occupy at most


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _payload(counter: int, capture_ms: int) -> int:
    body = ((counter & 0xFFFFFFFF) << 48) | (capture_ms & 0xFFFFFFFFFFFF)
    return (body << 16) | crc16(body.to_bytes(10, "big"))


def block_size(width: int) -> int:
    """The block edge used for a frame of this width."""
    if width >= BLOCK * PER_ROW:
        return BLOCK
    if width >= SMALL_BLOCK * PER_ROW:
        return SMALL_BLOCK
    raise ValueError(
        f"a frame {width} px wide is too narrow for the burned-in code "
        f"(needs {SMALL_BLOCK * PER_ROW})"
    )


def stamp(y_plane: np.ndarray, counter: int, capture_ms: int) -> None:
    """Draw the code into the top-left of an 8-bit luma plane, in place."""
    block = block_size(y_plane.shape[1])
    value = _payload(counter, capture_ms)
    bits = np.array([(value >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=np.uint8)
    levels = np.where(bits.reshape(ROWS, PER_ROW) == 1, WHITE, BLACK).astype(np.uint8)
    y_plane[: block * ROWS, : block * PER_ROW] = np.kron(
        levels, np.ones((block, block), dtype=np.uint8)
    )


def read(y_plane: np.ndarray) -> tuple[int, int] | None:
    """The (counter, capture_ms) drawn by ``stamp``, or None if absent or damaged."""
    try:
        block = block_size(y_plane.shape[1])
    except ValueError:
        return None
    if y_plane.shape[0] < block * ROWS:
        return None
    region = y_plane[: block * ROWS, : block * PER_ROW].astype(np.uint16)
    # mean of the central half of every block
    lo, hi = block // 4, block - block // 4
    blocks = region.reshape(ROWS, block, PER_ROW, block)[:, lo:hi, :, lo:hi].mean(axis=(1, 3))
    bits = (blocks.reshape(-1) > 128).astype(np.uint8)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    body, check = value >> 16, value & 0xFFFF
    if crc16(body.to_bytes(10, "big")) != check:
        return None
    return body >> 48, body & 0xFFFFFFFFFFFF
