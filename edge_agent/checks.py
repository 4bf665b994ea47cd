"""The technician's checks: each says what it found and, when it fails, what to do.

``classroom-agent doctor`` runs them all; ``net check`` and ``test …`` run one each.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import av

from edge_agent.devices import alsa, v4l2
from edge_agent.devices.encoder_probe import choose_encoder
from edge_agent.devices.errors import DeviceError
from edge_agent.errors import AgentError
from edge_agent.profile import Device, HardwareProfile, load_profile
from edge_agent.sources import capture_spec

CLOCK_LIMIT_S = 0.5


@dataclass
class Check:
    """One line of the doctor's list."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_profile(path: pathlib.Path) -> tuple[Check, HardwareProfile | None]:
    """The hardware profile loads and validates."""
    try:
        loaded = load_profile(path)
    except AgentError as err:
        first = str(err).splitlines()
        return Check("profile", False, " ".join(first[:2]), "fix the field named above"), None
    p = loaded.profile
    return Check("profile", True, f"{path}: {p.name!r}, {len(p.devices)} devices"), p


def controller_address(state_dir: pathlib.Path) -> tuple[str, int] | None:
    """Host and port of the enrolled controller, or None when not enrolled."""
    try:
        doc = json.loads((state_dir / "identity.json").read_text())
    except (OSError, ValueError):
        return None
    parts = urlsplit(str(doc.get("controller", "")))
    if not parts.hostname or not parts.port:
        return None
    return parts.hostname, parts.port


def check_enrolled(state_dir: pathlib.Path) -> Check:
    """The agent has an identity from the controller."""
    address = controller_address(state_dir)
    if address is None:
        return Check(
            "enrolled",
            False,
            f"no identity in {state_dir}",
            "run 'classroom-agent enroll --controller tcp://HOST:PORT --token TOKEN'",
        )
    return Check("enrolled", True, f"controller {address[0]}:{address[1]}")


def check_controller(state_dir: pathlib.Path, timeout: float = 2.0) -> Check:
    """The controller's control port answers; reports the path and the connect latency."""
    address = controller_address(state_dir)
    if address is None:
        return Check("controller", False, "not enrolled, so no controller to reach", "enroll first")
    host, port = address
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            local = conn.getsockname()[0]
    except OSError as err:
        return Check(
            "controller",
            False,
            f"cannot reach {host}:{port} ({err.strerror or err})",
            "check the network cable and VLAN, and that the controller is running",
        )
    ms = (time.monotonic() - started) * 1000
    return Check(
        "controller", True, f"{host}:{port} from {local} ({interface_of(local)}), {ms:.1f} ms"
    )


def interface_of(address: str) -> str:
    """The network interface that holds ``address``."""
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == address for a in addrs):
            return str(name)
    return "?"


def check_clock(state_dir: pathlib.Path) -> Check:
    """The last measured offset to the controller's clock is within 500 ms."""
    try:
        offset = float(json.loads((state_dir / "clock-offset.json").read_text())["offset_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return Check(
            "clock", False, "offset to the controller not measured yet", "start the agent online"
        )
    ok = abs(offset) <= CLOCK_LIMIT_S
    return Check(
        "clock",
        ok,
        f"{offset * 1000:+.0f} ms off the controller",
        "" if ok else "enable time sync: 'apt install chrony' and point it at the school's NTP",
    )


def check_network(state_dir: pathlib.Path, path: pathlib.Path | None = None) -> Check:
    """This PC's VLAN and subnet against the network profile (a file, else the controller's)."""
    from edge_agent.network.interfaces import check_placement
    from edge_agent.network.policy import cached_profile
    from protocols.network_profile import NetworkProfileError, load_network_profile_toml

    if path is not None:
        try:
            profile = load_network_profile_toml(path.read_text(), str(path))
        except (OSError, NetworkProfileError) as err:
            return Check("network profile", False, str(err), "fix the file or leave it out")
    else:
        found = cached_profile(state_dir)
        if found is None:
            return Check(
                "network profile",
                True,
                "none assigned by the controller yet (nothing to check)",
            )
        profile = found
    placement = check_placement(profile)
    return Check(
        f"network profile {profile.name}",
        placement.ok,
        placement.message
        if not placement.ok
        else f"{placement.interface or 'any interface'} {placement.address or ''} "
        f"(VLAN {placement.vlan_found if placement.vlan_found is not None else 'untagged'}); "
        f"{placement.message}".strip(),
        ""
        if placement.ok
        else "plug the PC into the recording-classroom port, or ask for the right profile",
    )


def check_encoder(profile: HardwareProfile) -> Check:
    """The profile's video encoder opens here (or libx264 stands in)."""
    try:
        codec, warning = choose_encoder(profile.encoder.video_codec)
    except DeviceError as err:
        return Check("encoder", False, str(err), "install ffmpeg's libx264 (apt install libx264)")
    if warning:
        return Check("encoder", False, warning, "install the GPU driver, or set libx264")
    return Check("encoder", True, f"{codec} opens")


def check_device(device: Device, timeout: float = 4.0) -> Check:
    """A device of the profile is present and gives media."""
    name = f"device {device.name}"
    if device.driver == "synthetic":
        return Check(name, True, "synthetic")
    if device.driver == "v4l2" and not pathlib.Path(device.device).exists():
        return Check(
            name, False, f"{device.device} does not exist", "plug the camera in; see 'devices'"
        )
    if device.driver == "alsa":
        cards = alsa.list_captures()
        if not cards:
            return Check(name, False, "no sound capture card", "plug the microphone in")
    if device.driver == "x11grab":
        number = device.device.lstrip(":").split(".")[0].split("+")[0]
        if not pathlib.Path(f"/tmp/.X11-unix/X{number}").exists():
            return Check(
                name, False, f"display {device.device} is not running", "log in on the panel PC"
            )
    if device.driver == "pulse":
        return _check_pulse_source(name, device.device)
    spec = capture_spec(device)
    try:
        with av.open(
            spec.url, format=spec.format, options=dict(spec.options), timeout=(timeout, timeout)
        ) as container:
            stream = container.streams.audio[0] if device.kind == "microphone" else None
            if stream is None:
                video = container.streams.video[0]
                return Check(
                    name,
                    True,
                    f"{video.codec_context.name} {video.codec_context.width}x"
                    f"{video.codec_context.height}",
                )
            return Check(name, True, f"{stream.codec_context.name} {stream.rate} Hz")
    except (av.FFmpegError, OSError, IndexError, ValueError) as err:
        return Check(
            name,
            False,
            f"{spec.url}: {getattr(err, 'strerror', None) or err}",
            "check power, cable and address of the device",
        )


def _check_pulse_source(name: str, source: str) -> Check:
    """A PulseAudio microphone: the source exists and gives 100 ms of sound."""
    from edge_agent.room.errors import RoomError
    from edge_agent.room.pulse import Recording, list_sources

    server = os.environ.get("PULSE_SERVER") or None
    try:
        names = [s.name for s in list_sources(server)]
    except RoomError as err:
        return Check(name, False, str(err), "start PulseAudio (or PipeWire) for the agent's user")
    if source not in names:
        return Check(
            name,
            False,
            f"no PulseAudio source {source!r}; found: {', '.join(names) or 'none'}",
            "set the microphone's device to one of the sources found",
        )
    recording = Recording(source, server=server)
    try:
        recording.open()
        recording.read(4800)
    except RoomError as err:
        return Check(name, False, str(err), "check the microphone is plugged in and not muted")
    finally:
        recording.close()
    return Check(name, True, f"pulse {source} 48000 Hz")


def check_ptz(device: Device) -> Check:
    """The camera's PTZ head answers VISCA over IP."""
    from edge_agent.devices.visca import ViscaClient, ViscaError

    assert device.ptz is not None
    import asyncio

    async def ask() -> bool:
        assert device.ptz is not None
        async with ViscaClient(device.ptz.host, device.ptz.port, timeout=0.5, retries=1) as c:
            return await c.inquire_power()

    try:
        on = asyncio.run(ask())
    except (ViscaError, OSError) as err:
        return Check(f"ptz {device.name}", False, str(err), "enable VISCA over IP on the camera")
    return Check(f"ptz {device.name}", True, f"{device.ptz.host} powered {'on' if on else 'off'}")


def check_disk(state_dir: pathlib.Path, reserve_mb: int = 2048) -> Check:
    """Free space for a lesson's recording plus the reserve."""
    where = state_dir if state_dir.exists() else pathlib.Path("/")
    free_mb = shutil.disk_usage(where).free // 2**20
    ok = free_mb >= reserve_mb + 2000
    return Check(
        "disk",
        ok,
        f"{free_mb} MiB free at {where}",
        "" if ok else "free space or let uploads finish ('classroom-agent uploads')",
    )


def doctor(profile_path: pathlib.Path, state_dir: pathlib.Path) -> list[Check]:
    """Everything, in the order a technician would look."""
    out: list[Check] = []
    profile_check, profile = check_profile(profile_path)
    out.append(profile_check)
    out.append(check_enrolled(state_dir))
    out.append(check_controller(state_dir))
    out.append(check_clock(state_dir))
    out.append(check_disk(state_dir))
    if profile is not None:
        out.append(check_encoder(profile))
        for device in profile.devices:
            out.append(check_device(device))
            if device.ptz is not None:
                out.append(check_ptz(device))
    return out


def as_json(checks: list[Check]) -> dict[str, object]:
    """The doctor's result for scripts."""
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def draft_profile() -> str:
    """A draft hardware profile for the devices found on this machine."""
    lines = ['name = "this-classroom"', "", "[encoder]", 'video_codec = "libx264"', ""]
    for index, node in enumerate(v4l2.list_devices()):
        try:
            modes = v4l2.probe(node)
            chosen = v4l2.negotiate(modes, 1280, 720, 30) if modes else None
        except DeviceError:
            chosen = None
        size = f"{chosen.mode.width}x{chosen.mode.height}" if chosen else "unknown modes"
        lines += [
            f"# {node}: {v4l2.device_name(node) or 'V4L2 device'}, best mode {size}",
            "[[devices]]",
            f'name = "camera{index}"',
            'kind = "camera"',
            'role = "teacher"',
            'driver = "v4l2"',
            f'device = "{node}"',
            "width = 1280",
            "height = 720",
            "fps = 30",
            "bitrate = 2_000_000",
            "",
        ]
    for index, card in enumerate(alsa.list_captures()):
        lines += [
            f"# {card.hw}: {card.name}",
            "[[devices]]",
            f'name = "mic{index}"',
            'kind = "microphone"',
            'role = "room"',
            'driver = "alsa"',
            f'device = "{card.plughw}"',
            "echo_cancel = true",
            "bitrate = 48_000",
            "",
        ]
    if len(lines) == 5:
        lines.append("# no cameras (/dev/video*) or sound capture cards found on this machine")
    return "\n".join(lines)
