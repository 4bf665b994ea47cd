"""H.264 encoder probing (really opening encoders) and the fallback decision."""

from __future__ import annotations

import time

import pytest

from edge_agent.devices.encoder_probe import HW_H264, choose_encoder, probe_encoders
from edge_agent.devices.errors import DeviceError


def test_probe_reports_every_encoder_and_libx264_opens() -> None:
    started = time.monotonic()
    results = probe_encoders()
    elapsed = time.monotonic() - started
    assert list(results) == ["libx264", *HW_H264]
    assert results["libx264"] == "ok"
    for name, reason in results.items():
        assert reason and "\n" not in reason, name
    assert elapsed < len(results) * 1.0


def test_nvenc_does_not_open_here_and_falls_back() -> None:
    # No NVIDIA GPU on this machine: either not built in or no CUDA driver.
    assert probe_encoders(640, 360)["h264_nvenc"] != "ok"
    codec, warning = choose_encoder("h264_nvenc")
    assert codec == "libx264"
    assert warning is not None
    assert "h264_nvenc" in warning and "libx264" in warning


def test_wanted_encoder_that_opens_is_used() -> None:
    fake = {"libx264": "ok", "h264_vaapi": "ok"}
    assert choose_encoder("h264_vaapi", probe=lambda: fake) == ("h264_vaapi", None)
    assert choose_encoder("libx264", probe=lambda: fake) == ("libx264", None)


def test_fallback_warning_says_what_and_why() -> None:
    fake = {"libx264": "ok", "h264_qsv": "Error creating a MFX session: -9. (Unknown error)"}
    codec, warning = choose_encoder("h264_qsv", probe=lambda: fake)
    assert codec == "libx264"
    assert warning == (
        "H.264 encoder h264_qsv is not usable: Error creating a MFX session: -9. "
        "(Unknown error); encoding with libx264 instead"
    )


def test_encoder_not_probed_falls_back() -> None:
    codec, warning = choose_encoder("h264_amf", probe=lambda: {"libx264": "ok"})
    assert codec == "libx264"
    assert warning is not None and "h264_amf" in warning and "not probed" in warning


def test_no_libx264_is_an_error() -> None:
    fake = {"libx264": "not available in this FFmpeg build", "h264_nvenc": "no GPU"}
    with pytest.raises(DeviceError, match=r"h264_nvenc.*no GPU.*libx264.*not available"):
        choose_encoder("h264_nvenc", probe=lambda: fake)
    with pytest.raises(DeviceError, match=r"libx264 cannot be opened: not available"):
        choose_encoder("libx264", probe=lambda: fake)
    # ...but a working wanted encoder does not need libx264.
    assert choose_encoder("h264_nvenc", probe=lambda: {"h264_nvenc": "ok"}) == (
        "h264_nvenc",
        None,
    )
