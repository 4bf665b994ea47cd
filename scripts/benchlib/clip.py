"""A pre-encoded clip for the light load generator, and the stamp its receivers read.

Each stream is encoded ONCE at start (the agent's synthetic camera, which burns in the
barcode, and its x264 settings; Opus from the synthetic microphone), one GOP long, and
packetised with the agent's packer. Every video frame is sent after a small SEI NAL unit
(user data unregistered) that carries the stream id, the frame counter and the send time
in ASCII hex; SFUs forward SEI like any NAL unit (the built-in relay re-packetises it
with the rest of the frame), so a receiver finds the stamp in the RTP payload with a byte
search instead of decoding the frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiortc.codecs.h264 import H264Encoder

from edge_agent.devices.synthetic import SyntheticCamera, SyntheticMicrophone
from edge_agent.media.encoders import AudioEncoder, VideoEncoder

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
# 16 bytes that never hold a zero, so no emulation-prevention byte can land in the SEI.
STAMP_UUID = bytes.fromhex("c1a55b41d6e511ee9a11c1a55b41d6e5")
STAMP_TEXT = 28  # stream id (4 hex), counter (8 hex), send time in µs (16 hex)


@dataclass(frozen=True)
class StreamShape:
    """One stream of a classroom: video size, rate and bitrate, or sound."""

    name: str
    kind: str
    width: int = 0
    height: int = 0
    fps: int = 50
    bitrate: int = 48_000


@dataclass(frozen=True)
class ClipFrame:
    """One frame of a clip: its RTP payloads (the stamp goes first) and RTP time offset."""

    payloads: tuple[bytes, ...]
    rtp_offset: int


@dataclass(frozen=True)
class Clip:
    """A stream's pre-encoded loop."""

    shape: StreamShape
    frames: tuple[ClipFrame, ...]
    rtp_step: int  # RTP time of one frame
    payload_bytes: int


def stamp_payload(stream: int, counter: int, send_us: int) -> bytes:
    """The SEI NAL unit stamped on a frame (also its own single-NAL RTP payload)."""
    text = f"{stream & 0xFFFF:04x}{counter & 0xFFFFFFFF:08x}{send_us & (2**64 - 1):016x}"
    return bytes([0x06, 0x05, 16 + STAMP_TEXT]) + STAMP_UUID + text.encode() + b"\x80"


def read_stamp(payload: bytes) -> tuple[int, int, int] | None:
    """(stream, counter, send µs) if this RTP payload carries a stamp, whatever the
    packetisation (single NAL unit or STAP-A)."""
    at = payload.find(STAMP_UUID)
    if at < 0:
        return None
    text = payload[at + 16 : at + 16 + STAMP_TEXT]
    try:
        return int(text[:4], 16), int(text[4:12], 16), int(text[12:], 16)
    except ValueError:
        return None


def encode_video(shape: StreamShape, seconds: float = 2.0) -> Clip:
    """One GOP of the synthetic camera, encoded as the agent encodes it."""
    camera = SyntheticCamera(shape.width, shape.height, shape.fps, f"load {shape.name}")
    encoder = VideoEncoder(shape.width, shape.height, shape.fps, shape.bitrate, gop_seconds=seconds)
    count = int(shape.fps * seconds)
    step = VIDEO_CLOCK // shape.fps
    frames: list[ClipFrame] = []
    total = 0
    now_ms = int(time.time() * 1000)
    i = 0
    while len(frames) < count:
        video = camera.frame(i, now_ms + i * 1000 // shape.fps)
        for encoded in encoder.encode(video, 0.0, force_keyframe=i == 0):
            nals = H264Encoder._split_bitstream(encoded.data)
            payloads = tuple(H264Encoder._packetize(nals))
            total += sum(len(p) for p in payloads)
            frames.append(ClipFrame(payloads, len(frames) * step))
        i += 1
    return Clip(shape, tuple(frames[:count]), step, total)


def encode_audio(shape: StreamShape, seconds: float = 2.0) -> Clip:
    """The synthetic microphone's tone and clicks in 20 ms Opus packets."""
    mic = SyntheticMicrophone()
    encoder = AudioEncoder(shape.bitrate)
    frames: list[ClipFrame] = []
    i = 0
    while len(frames) < int(50 * seconds):
        for encoded in encoder.encode(mic.frame(i), 0.0):
            frames.append(ClipFrame((encoded.data,), len(frames) * 960))
        i += 1
    return Clip(shape, tuple(frames), 960, sum(len(f.payloads[0]) for f in frames))


def encode(shape: StreamShape) -> Clip:
    """The clip of a stream of either kind."""
    return encode_video(shape) if shape.kind == "video" else encode_audio(shape)
