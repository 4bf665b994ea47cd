"""Which H.264 encoders actually work on this machine, and which one to use.

An encoder being compiled into FFmpeg says little: hardware encoders also need the GPU,
its driver and (for VAAPI/QSV) a device handed to them. The only reliable test is to open
one, so ``probe_encoders`` does exactly that with a small PyAV encoder context per name and
reports "ok" or why not. ``choose_encoder`` turns that into a decision that never stops a
recording: an encoder that does not open is replaced by libx264, with a warning.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Mapping

import av
import av.logging
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from edge_agent.devices.errors import DeviceError

__all__ = ["HW_H264", "OK", "SOFTWARE_H264", "choose_encoder", "probe_encoders"]

OK = "ok"
SOFTWARE_H264 = "libx264"
HW_H264 = ("h264_vaapi", "h264_qsv", "h264_nvenc", "h264_v4l2m2m")

# VAAPI and QSV take NV12 from system memory; the others take planar 4:2:0.
_NV12_ENCODERS = frozenset({"h264_vaapi", "h264_qsv"})

Probe = Callable[[], Mapping[str, str]]


def probe_encoders(width: int = 1280, height: int = 720) -> dict[str, str]:
    """Try to open libx264 and each hardware H.264 encoder at ``width``x``height``, 30 fps.

    Maps each encoder name to "ok" or a one-line reason it cannot be used. Opening an
    encoder context takes milliseconds; no frame is encoded and nothing is kept open.
    h264_vaapi is opened without a hardware device, so it reports a failure even on
    machines where it could work once given one.
    """
    return {name: _try_open(name, width, height) for name in (SOFTWARE_H264, *HW_H264)}


def choose_encoder(wanted: str, probe: Probe = probe_encoders) -> tuple[str, str | None]:
    """The encoder to use for ``wanted`` and a warning if it had to be replaced.

    Returns ``(wanted, None)`` when ``wanted`` opens, else ``("libx264", warning)`` where
    the warning names the wanted encoder and why it failed. Raises DeviceError only when
    libx264 does not open either, since then there is nothing to fall back to.
    """
    results = probe()
    reason = results.get(wanted, f"it was not probed (probed: {', '.join(results) or 'none'})")
    if reason == OK:
        return wanted, None
    fallback = results.get(SOFTWARE_H264, "it was not probed")
    if fallback != OK:
        if wanted == SOFTWARE_H264:
            raise DeviceError(f"the H.264 encoder {SOFTWARE_H264} cannot be opened: {reason}")
        raise DeviceError(
            f"the H.264 encoder {wanted} cannot be opened ({reason}), and neither can the "
            f"fallback {SOFTWARE_H264} ({fallback})"
        )
    return SOFTWARE_H264, (
        f"H.264 encoder {wanted} is not usable: {reason}; encoding with {SOFTWARE_H264} instead"
    )


def _try_open(name: str, width: int, height: int) -> str:
    """Open one encoder context and report "ok" or the reason on one line."""
    try:
        ctx = CodecContext.create(name, "w")
    except ValueError:  # av.codec.codec.UnknownCodecError and friends
        return "not available in this FFmpeg build"
    if not isinstance(ctx, VideoCodecContext):
        return f"not a video encoder ({ctx.type})"
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "nv12" if name in _NV12_ENCODERS else "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.framerate = fractions.Fraction(30, 1)
    # FFmpeg says why in its log ("Cannot load libcuda.so.1"), not in the error code, so
    # error-level messages are captured (on this thread only) while the encoder opens.
    previous = av.logging.get_level()
    if previous is None or previous < av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            ctx.open()
    except (av.FFmpegError, ValueError, OSError, RuntimeError) as exc:
        return _reason(exc, [message for level, _, message in logs if level <= av.logging.ERROR])
    finally:
        av.logging.set_level(previous)
        # Freeing the context releases any hardware session (NVENC allows only a few).
        del ctx
    return OK


def _reason(exc: BaseException, messages: list[str]) -> str:
    """One line from FFmpeg's own messages and the error, e.g. "Cannot load libcuda.so.1"."""
    said = list(dict.fromkeys(m.strip() for m in messages if m.strip()))
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        error = exc.strerror
    else:
        error = f"{type(exc).__name__}: {exc}"
    text = f"{'; '.join(said)} ({error})" if said else f"open failed: {error}"
    return " ".join(text.split())
