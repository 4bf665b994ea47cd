"""What the agent tells the controller about the classroom: its devices (registration),
and in each heartbeat their states, per-track media figures, the alerts they raise and
whether the next lesson can start."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.media.rates import RateMeter
from edge_agent.profile import HardwareProfile
from edge_agent.session import LessonSession
from edge_agent.sources import MediaSource
from protocols.messages import DeviceInfo, DeviceState, TrackStats

CLOCK_ALERT_S = 0.5  # lessons start on the clock


def inventory(profile: HardwareProfile) -> list[DeviceInfo]:
    """The devices the profile declares, as registration lists them."""
    return [
        DeviceInfo(
            name=d.name,
            kind=d.kind,
            driver=d.driver,
            role=d.role,
            width=d.width,
            height=d.height,
            fps=d.fps,
            bitrate=d.bitrate,
        )
        for d in profile.devices
    ]


def device_states(
    profile: HardwareProfile,
    sources: Mapping[str, MediaSource],
    probed: Mapping[str, tuple[bool, str]],
) -> dict[str, DeviceState]:
    """Each device: its runner's state while it runs, else its last probe."""
    out = {}
    for d in profile.devices:
        ok, detail = probed.get(d.name, (True, ""))
        out[d.name] = DeviceState(state="idle" if ok else "failed", detail=detail)
    for name, runner in sources.items():
        level = runner.level_dbfs
        out[name] = DeviceState(
            state=runner.state,  # type: ignore[arg-type]
            detail=runner.detail,
            level_dbfs=None if level is None else round(level, 1),
        )
    return out


def media_stats(
    sources: Mapping[str, MediaSource], session: LessonSession | None, rates: RateMeter
) -> list[TrackStats]:
    """Frames, bytes, rates, and RTCP loss and round trip of every sent and received track."""
    qos = session.qos if session is not None else {}
    counters = [("send", name, r.bus.frames, r.bus.bytes) for name, r in sources.items()]
    if session is not None:
        counters += [("recv", k, f, b) for k, (f, b) in session.received_counters().items()]
    out = []
    for direction, track, frames, nbytes in counters:
        fps, bps = rates.rates(f"{direction}/{track}", frames, nbytes)
        loss, rtt = qos.get(track, (None, None))
        out.append(
            TrackStats(
                track=track,
                direction=direction,  # type: ignore[arg-type]
                frames=frames,
                bytes=nbytes,
                fps=round(fps, 1),
                bitrate_bps=round(bps),
                loss_pct=loss,
                rtt_ms=rtt if direction == "send" else None,
            )
        )
    return out


def _set(alerts: dict[str, str], key: str, message: str | None) -> None:
    if message:
        alerts[key] = message
    else:
        alerts.pop(key, None)


def update_alerts(
    alerts: dict[str, str],
    devices: Mapping[str, DeviceState],
    sources: Mapping[str, MediaSource],
    clock_offset_s: float | None,
) -> None:
    """device_lost (stopped or will not open), mic_silent and clock_offset, raised or cleared."""
    lost = {n: d for n, d in devices.items() if d.state in ("lost", "failed")}
    _set(
        alerts,
        "device_lost",
        "; ".join(f"{n} {d.state}: {d.detail}" for n, d in sorted(lost.items())),
    )
    silent = [n for n, r in sources.items() if r.kind == "audio" and r.silence.raised]
    _set(
        alerts,
        "mic_silent",
        f"no sound above -45 dBFS for 120 s from {', '.join(silent)} during the lesson; "
        "check the microphone is plugged in, switched on and not muted"
        if silent
        else None,
    )
    off = clock_offset_s is not None and abs(clock_offset_s) > CLOCK_ALERT_S
    _set(
        alerts,
        "clock_offset",
        f"this PC's clock is {clock_offset_s * 1000:+.0f} ms off the controller; lessons "
        "still start on the controller's time, but fix time sync (chrony/NTP)"
        if off and clock_offset_s is not None
        else None,
    )


def readiness(
    devices: Mapping[str, DeviceState], alerts: Mapping[str, str], clock_measured: bool
) -> dict[str, str]:
    """What stands in the way of the next lesson, by check (empty: ready)."""
    out: dict[str, str] = {}
    failed = [f"{n} ({d.detail or d.state})" for n, d in devices.items() if d.state == "failed"]
    if failed:
        out["devices"] = f"device(s) failing: {', '.join(failed)}; run 'classroom-agent doctor'"
    if "disk_low" in alerts:
        out["disk"] = alerts["disk_low"]
    if not clock_measured:
        out["clock"] = "clock offset to the controller not measured yet"
    return out
