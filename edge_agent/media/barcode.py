"""A burned-in frame counter and capture timestamp that survive H.264 compression.

96 bits — a 32-bit counter, a 48-bit capture time in ms and a 16-bit CRC — drawn as
16×16-pixel black/white blocks, 32 per row in 3 rows (a 512×48 region at the top left).
Blocks aligned to macroblocks keep their level even at low bitrates.
"""

from __future__ import annotations

import numpy as np

BLOCK = 16
PER_ROW = 32
ROWS = 3
BITS = PER_ROW * ROWS
BLACK, WHITE = 16, 235
WIDTH, HEIGHT = BLOCK * PER_ROW, BLOCK * ROWS


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


def stamp(y_plane: np.ndarray, counter: int, capture_ms: int) -> None:
    """Draw the code into the top-left of an 8-bit luma plane, in place."""
    value = _payload(counter, capture_ms)
    bits = np.array([(value >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=np.uint8)
    levels = np.where(bits.reshape(ROWS, PER_ROW) == 1, WHITE, BLACK).astype(np.uint8)
    y_plane[:HEIGHT, :WIDTH] = np.kron(levels, np.ones((BLOCK, BLOCK), dtype=np.uint8))


def read(y_plane: np.ndarray) -> tuple[int, int] | None:
    """The (counter, capture_ms) drawn by ``stamp``, or None if absent or damaged."""
    if y_plane.shape[0] < HEIGHT or y_plane.shape[1] < WIDTH:
        return None
    region = y_plane[:HEIGHT, :WIDTH].astype(np.uint16)
    # mean of the central 8×8 of every block
    blocks = region.reshape(ROWS, BLOCK, PER_ROW, BLOCK)[:, 4:12, :, 4:12].mean(axis=(1, 3))
    bits = (blocks.reshape(-1) > 128).astype(np.uint8)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    body, check = value >> 16, value & 0xFFFF
    if crc16(body.to_bytes(10, "big")) != check:
        return None
    return body >> 48, body & 0xFFFFFFFFFFFF
