"""Encode once: the agent's own H.264 and Opus encoders, through PyAV.

aiortc's built-in encoders cap H.264 at 3 Mbps and run x264 at its slow default preset;
owning the encoder lets the profile set the bitrate and preset, and lets one encoded
stream feed the WebRTC sender, the recorder and the live push alike.
"""

from __future__ import annotations

import fractions
from typing import Any, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from edge_agent.media.errors import EncoderUnavailable
from protocols.media.encoded_frame import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame
from protocols.media.h264 import is_keyframe


def _open(codec: str) -> Any:
    try:
        return CodecContext.create(codec, "w")
    except (av.FFmpegError, ValueError) as err:  # unknown codec → ValueError/UnknownCodec
        raise EncoderUnavailable(
            f"encoder {codec!r} is not available on this machine ({err}); set "
            'encoder.video_codec = "libx264" in the hardware profile, or install the '
            "driver for the hardware encoder"
        ) from err


class VideoEncoder:
    """H.264 with in-band SPS/PPS on every keyframe, no B-frames, bitrate held by VBV.

    ``retarget`` moves the bitrate (congestion control): x264 takes a new rate only
    through a VBV reconfiguration that PyAV cannot reach once the codec is open, so the
    encoder is rebuilt at the next frame, which is then a keyframe carrying the headers.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        bitrate: int,
        codec: str = "libx264",
        preset: str = "veryfast",
        gop_seconds: float = 2.0,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.codec = codec
        self._preset = preset
        self._gop_seconds = gop_seconds
        self._ctx = self._build(bitrate)
        self.bitrate = bitrate
        self._pending: int | None = None
        self.rebuilds = 0

    def _build(self, bitrate: int) -> VideoCodecContext:
        codec, width, height, fps = self.codec, self.width, self.height, self.fps
        ctx = cast(VideoCodecContext, _open(codec))
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = fractions.Fraction(fps, 1)
        ctx.bit_rate = bitrate
        ctx.gop_size = max(1, int(fps * self._gop_seconds))
        ctx.max_b_frames = 0
        if codec == "libx264":
            # zerolatency: no lookahead or frame threads, one packet out per frame in.
            # VBV holds the rate so keyframes do not burst the uplink.
            ctx.options = {
                "preset": self._preset,
                "tune": "zerolatency",
                "profile": "baseline",
                "x264-params": (
                    f"repeat-headers=1:annexb=1:vbv-maxrate={bitrate // 1000}:"
                    f"vbv-bufsize={bitrate // 2000}:keyint={ctx.gop_size}:"
                    f"min-keyint={ctx.gop_size}:scenecut=0:force-cfr=1"
                ),
            }
        try:
            ctx.open()
        except av.FFmpegError as err:
            raise EncoderUnavailable(
                f"encoder {codec!r} would not open at {width}x{height} "
                f"({err}); fall back to libx264"
            ) from err
        return ctx

    def retarget(self, bitrate: int) -> None:
        """Encode at ``bitrate`` from the next frame on (thread-safe: one assignment)."""
        if bitrate != self.bitrate:
            self._pending = bitrate

    def _apply_pending(self) -> bool:
        bitrate, self._pending = self._pending, None
        if bitrate is None or bitrate == self.bitrate:
            return False
        self._ctx = self._build(bitrate)
        self.bitrate = bitrate
        self.rebuilds += 1
        return True

    def encode(
        self, frame: av.VideoFrame, capture_ms: float, force_keyframe: bool = False
    ) -> list[EncodedFrame]:
        """Encode one frame; a forced keyframe answers a PLI or starts a recording."""
        if self._pending is not None and self._apply_pending():
            force_keyframe = True
        frame.pict_type = (
            av.video.frame.PictureType.I if force_keyframe else (av.video.frame.PictureType.NONE)
        )
        out = []
        for packet in self._ctx.encode(frame):
            data = bytes(packet)
            pts = packet.pts if packet.pts is not None else frame.pts or 0
            out.append(
                EncodedFrame(
                    "video",
                    data,
                    int(pts),
                    VIDEO_TIME_BASE,
                    packet.is_keyframe or is_keyframe(data),
                    capture_ms,
                )
            )
        return out


class AudioEncoder:
    """Opus, 48 kHz mono, 20 ms frames, tuned for speech."""

    def __init__(self, bitrate: int = 48000) -> None:
        ctx = cast(AudioCodecContext, _open("libopus"))
        ctx.sample_rate = 48000
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.time_base = AUDIO_TIME_BASE
        ctx.options = {"application": "voip", "frame_duration": "20"}
        ctx.open()
        self._ctx = ctx
        self._next_pts = 0

    def encode(self, frame: av.AudioFrame, capture_ms: float) -> list[EncodedFrame]:
        """Encode 20 ms of audio; pts continue from 0 in 1/48000 units."""
        out = []
        for packet in self._ctx.encode(frame):
            out.append(
                EncodedFrame(
                    "audio", bytes(packet), self._next_pts, AUDIO_TIME_BASE, True, capture_ms
                )
            )
            self._next_pts += packet.duration or 960
        return out
