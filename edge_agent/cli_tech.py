"""The technician's diagnostic commands: devices, test, net check, logs, doctor.

Human-readable by default, ``--json`` for scripts. Exit codes: 0 all good, 1 a check
failed (the output says what to do), 2 bad input (unknown device, unreadable profile).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Annotated

import av
import cv2
import typer

from edge_agent import checks
from edge_agent.devices.synthetic import SyntheticCamera
from edge_agent.errors import AgentError
from edge_agent.media.level import dbfs
from edge_agent.profile import Device, HardwareProfile, load_profile
from edge_agent.sources import capture_spec

test_app = typer.Typer(help="Try one device now.", no_args_is_help=True)
net_app = typer.Typer(help="Network checks.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="One JSON object for scripts.")]
ProfileOpt = Annotated[pathlib.Path, typer.Option("--profile", envvar="CLASSBRIDGE_PROFILE")]
StateOpt = Annotated[pathlib.Path, typer.Option("--state-dir", envvar="CLASSBRIDGE_AGENT_STATE")]


def _profile(profile: pathlib.Path) -> HardwareProfile:
    """The profile at ``profile``, or exit 2 naming what is wrong with it."""
    try:
        return load_profile(profile).profile
    except AgentError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _device(profile: pathlib.Path, name: str, kinds: tuple[str, ...]) -> Device:
    profile_doc = _profile(profile)
    found = [d for d in profile_doc.devices if d.kind in kinds]
    for device in found:
        if device.name == name or not name:
            return device
    names = ", ".join(d.name for d in found) or "none"
    typer.echo(f"error: no {'/'.join(kinds)} named {name!r} in {profile}; have: {names}", err=True)
    raise typer.Exit(2)


def _emit(result: dict[str, object], ok: bool, json_out: bool, text: str) -> None:
    typer.echo(json.dumps(result) if json_out else text)
    if not ok:
        raise typer.Exit(1)


def devices(json_out: Json = False) -> None:
    """Probe this machine (cameras, sound cards, displays, encoders); print a draft profile."""
    from edge_agent.devices import alsa, v4l2
    from edge_agent.devices.encoder_probe import probe_encoders

    encoders = probe_encoders()
    cameras = {n: [str(m) for m in _modes(n)] for n in v4l2.list_devices()}
    cards = [f"{c.hw} {c.name}" for c in alsa.list_captures()]
    displays = sorted(p.name.replace("X", ":") for p in pathlib.Path("/tmp/.X11-unix").glob("X*"))
    found = {"v4l2": cameras, "alsa": cards, "displays": displays, "encoders": encoders}
    if json_out:
        typer.echo(json.dumps({**found, "draft_profile": checks.draft_profile()}))
        return
    typer.echo(f"cameras/capture (V4L2): {', '.join(cameras) or 'none'}")
    typer.echo(f"sound capture (ALSA):   {', '.join(cards) or 'none'}")
    typer.echo(f"X displays:             {', '.join(displays) or 'none'}")
    for name, state in encoders.items():
        typer.echo(f"encoder {name:<13} {state}")
    typer.echo("\n# draft hardware profile\n" + checks.draft_profile())


def _modes(node: str) -> list[object]:
    from edge_agent.devices import v4l2
    from edge_agent.devices.errors import DeviceError

    try:
        return list(v4l2.probe(node))
    except DeviceError:
        return []


@contextlib.contextmanager
def _video_frames(device: Device) -> Iterator[Iterator[av.VideoFrame]]:
    """The device's decoded frames; a synthetic one's made here, as the agent makes them."""
    if device.driver == "synthetic":
        yield _synthetic_frames(device)
        return
    spec = capture_spec(device)
    with av.open(spec.url, format=spec.format, options=dict(spec.options), timeout=(5, 5)) as c:
        yield c.decode(video=0)


def _synthetic_frames(device: Device) -> Iterator[av.VideoFrame]:
    """A synthetic device's frames at its own rate, for ever."""
    camera = SyntheticCamera(device.width, device.height, device.fps, device.name)
    started = time.monotonic()
    for counter in itertools.count():
        due = started + counter / device.fps
        time.sleep(max(0.0, due - time.monotonic()))
        yield camera.frame(counter, int(time.time() * 1000))


@test_app.command("camera")
def test_camera(
    name: Annotated[str, typer.Argument(help="Device name in the profile.")] = "",
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    seconds: float = 3.0,
    still: Annotated[pathlib.Path, typer.Option(help="Where to save a still.")] = pathlib.Path(
        "camera-still.jpg"
    ),
    json_out: Json = False,
) -> None:
    """Open a camera or panel capture, save a still, report measured fps and resolution."""
    device = _device(profile, name, ("camera", "panel"))
    url = "(test pattern)" if device.driver == "synthetic" else capture_spec(device).url
    frames, last = 0, None
    try:
        with _video_frames(device) as decoded:
            started = time.monotonic()
            for frame in decoded:
                frames += 1
                last = frame
                if not json_out and frames % 10 == 0:
                    typer.echo(f"\r  {frames} frames…", nl=False)
                if time.monotonic() - started >= seconds:
                    break
            elapsed = time.monotonic() - started
    except (av.FFmpegError, OSError) as err:
        reason = getattr(err, "strerror", None) or err
        _emit(
            {"ok": False, "device": device.name, "error": str(reason)},
            False,
            json_out,
            f"FAIL {device.name}: cannot open {url} ({reason}); check power, cable, address",
        )
        return
    if last is None:
        _emit(
            {"ok": False, "device": device.name, "error": "no frames"},
            False,
            json_out,
            f"FAIL {device.name}: opened but no frames arrived; check the source",
        )
        return
    cv2.imwrite(str(still), last.to_ndarray(format="bgr24"))
    fps = frames / max(elapsed, 1e-6)
    result = {
        "ok": True,
        "device": device.name,
        "fps": round(fps, 1),
        "width": last.width,
        "height": last.height,
        "still": str(still),
    }
    _emit(
        result,
        True,
        json_out,
        f"\nOK {device.name}: {last.width}x{last.height} at {fps:.1f} fps; still saved to {still}",
    )


@test_app.command("mic")
def test_mic(
    name: Annotated[str, typer.Argument(help="Device name in the profile.")] = "",
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    seconds: float = 5.0,
    json_out: Json = False,
) -> None:
    """Show the microphone's level for 5 s; fails if it never rises above -45 dBFS."""
    device = _device(profile, name, ("microphone",))
    levels: list[float] = []
    if device.driver == "synthetic":
        from edge_agent.devices.synthetic import SyntheticMicrophone

        mic = SyntheticMicrophone()
        levels = [
            dbfs(mic.frame(i).to_ndarray().reshape(-1).astype("int16"))
            for i in range(int(seconds * 50))
        ]
    elif device.driver == "pulse":  # PyAV has no pulse input: PulseAudio's own API
        from edge_agent.room.errors import RoomError
        from edge_agent.room.pulse import Recording

        recording = Recording(device.device, server=os.environ.get("PULSE_SERVER") or None)
        try:
            recording.open()
            for _ in range(int(seconds * 50)):
                levels.append(dbfs(recording.read(960)))
        except RoomError as err:
            _emit(
                {"ok": False, "device": device.name, "error": str(err)},
                False,
                json_out,
                f"FAIL {device.name}: {err}; 'pactl list short sources' lists the sources",
            )
            return
        finally:
            recording.close()
    else:
        spec = capture_spec(device)
        try:
            with av.open(
                spec.url, format=spec.format, options=dict(spec.options), timeout=(5, 5)
            ) as c:
                started = time.monotonic()
                for frame in c.decode(audio=0):
                    pcm = frame.to_ndarray().reshape(-1)
                    if pcm.dtype.kind == "f":
                        pcm = (pcm * 32767).astype("int16")
                    levels.append(dbfs(pcm.astype("int16")))
                    if not json_out and len(levels) % 10 == 0:
                        bar = "#" * max(0, int((levels[-1] + 60) / 2))
                        typer.echo(f"\r  {levels[-1]:6.1f} dBFS {bar:<30}", nl=False)
                    if time.monotonic() - started >= seconds:
                        break
        except (av.FFmpegError, OSError) as err:
            reason = getattr(err, "strerror", None) or err
            _emit(
                {"ok": False, "device": device.name, "error": str(reason)},
                False,
                json_out,
                f"FAIL {device.name}: cannot open {spec.url} ({reason}); is it plugged in?",
            )
            return
    peak = max(levels) if levels else -96.0
    ok = peak > -45.0
    _emit(
        {"ok": ok, "device": device.name, "peak_dbfs": round(peak, 1)},
        ok,
        json_out,
        f"\n{'OK' if ok else 'FAIL'} {device.name}: peak {peak:.1f} dBFS"
        + ("" if ok else " — no signal above -45 dBFS: unmute or check the microphone"),
    )


@test_app.command("panel")
def test_panel(
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    seconds: float = 3.0,
    json_out: Json = False,
) -> None:
    """Open the room's screens (panel, mid-screen) with test pictures for a few seconds."""
    from edge_agent.devices.synthetic import SyntheticCamera
    from edge_agent.room.screens import RoomScreens
    from protocols.messages import JoinLesson, RoomLabel, Subscription

    displays = _profile(profile).screens
    if not displays:
        typer.echo(f"error: {profile} declares no [[displays]] (or [output]) to test", err=True)
        raise typer.Exit(2)
    screens = RoomScreens(displays, "test")
    try:
        screens.start()
    except RuntimeError as err:
        _emit({"ok": False, "error": str(err)}, False, json_out, f"FAIL screens: {err}")
        return
    # A receiving room's lesson: the test teacher and courseware on every display.
    subs = [
        Subscription(source_classroom="test", track=t, kind="video", role=r)
        for t, r in (("teacher", "teacher"), ("content", "content"))
    ]
    join = JoinLesson(
        lesson_id="test",
        role="receiver",
        publish=[],
        subscribe=subs,
        start_at=0,
        end_at=0,
        rooms=[RoomLabel(classroom_id="test", school="测试学校", name="测试画面")],
    )
    screens.lesson(join, {})
    cams = {f"test-{s.track}": SyntheticCamera(1280, 720, 30, s.track) for s in subs}
    end, counter = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        counter += 1
        for key, cam in cams.items():
            screens.show(key, cam.frame(counter, int(time.time() * 1000)))
        time.sleep(1 / 15)
    screens.stop()
    names = ", ".join(f"{d.name} on {d.display}" for d in displays)
    _emit(
        {"ok": True, "displays": [d.name for d in displays]},
        True,
        json_out,
        f"OK screens: test pictures shown on {names}",
    )


@test_app.command("ptz")
def test_ptz(
    name: Annotated[str, typer.Argument(help="Camera name in the profile.")],
    preset: Annotated[str, typer.Argument(help="Preset name (teacher, board, students, wide).")],
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    json_out: Json = False,
) -> None:
    """Recall a PTZ preset over VISCA and report the round trip."""
    from edge_agent.devices.visca import ViscaError, preset_number, recall_preset_blocking

    device = _device(profile, name, ("camera",))
    if device.ptz is None:
        typer.echo(f"error: camera {device.name!r} has no [devices.ptz] in {profile}", err=True)
        raise typer.Exit(2)
    try:
        number = preset_number(device.ptz.presets, preset)
    except (KeyError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    try:
        rtt = recall_preset_blocking(device.ptz.host, device.ptz.port, number)
    except ViscaError as err:
        _emit({"ok": False, "error": str(err)}, False, json_out, f"FAIL ptz: {err}")
        return
    _emit(
        {"ok": True, "preset": preset, "number": number, "seconds": round(rtt, 3)},
        True,
        json_out,
        f"OK ptz {device.name}: preset {preset} ({number}) in {rtt * 1000:.0f} ms",
    )


@net_app.command("check")
def net_check(
    state_dir: StateOpt = pathlib.Path("/var/lib/classbridge/agent"),
    json_out: Json = False,
    network_profile: Annotated[
        pathlib.Path | None,
        typer.Option(help="Network profile TOML (default: the one the controller sent)."),
    ] = None,
) -> None:
    """Path and latency to the controller, VLAN and subnet against the profile, clock offset."""
    found = [
        checks.check_enrolled(state_dir),
        checks.check_controller(state_dir),
        checks.check_network(state_dir, network_profile),
        checks.check_clock(state_dir),
    ]
    _report(found, json_out)


def doctor(
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    state_dir: StateOpt = pathlib.Path("/var/lib/classbridge/agent"),
    json_out: Json = False,
) -> None:
    """Run every check; a pass/fail list, each failure with the fix to try."""
    _report(checks.doctor(profile, state_dir), json_out)


def logs(
    lines: Annotated[int, typer.Option("-n", help="How many lines.")] = 100,
    log_dir: Annotated[pathlib.Path, typer.Option(envvar="LOGS_DIRECTORY")] = pathlib.Path(
        "/var/log/classbridge"
    ),
) -> None:
    """The agent's recent log: from the systemd journal, else its log directory."""
    if shutil.which("journalctl"):
        done = subprocess.run(
            ["journalctl", "-u", "classroom-agent", "-n", str(lines), "--no-pager"],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and "No entries" not in done.stdout and done.stdout.strip():
            typer.echo(done.stdout.rstrip())
            return
    files = sorted(log_dir.glob("*.log"))
    if not files:
        typer.echo(f"no journal entries for classroom-agent and no logs in {log_dir}", err=True)
        raise typer.Exit(1)
    typer.echo("\n".join(files[-1].read_text(errors="replace").splitlines()[-lines:]))


def _report(found: list[checks.Check], json_out: bool) -> None:
    ok = all(c.ok for c in found)
    if json_out:
        typer.echo(json.dumps(checks.as_json(found)))
    else:
        for c in found:
            mark = "PASS" if c.ok else "FAIL"
            typer.echo(f"{mark}  {c.name:<16} {c.detail}" + (f"  → {c.fix}" if c.fix else ""))
        failed = sum(not c.ok for c in found)
        typer.echo("all checks passed" if ok else f"{failed} check(s) failed")
    if not ok:
        raise typer.Exit(1)


@test_app.command("speaker")
def test_speaker(
    profile: ProfileOpt = pathlib.Path("/etc/classbridge/profile.toml"),
    pulse_server: Annotated[
        str | None, typer.Option(envvar="PULSE_SERVER", help="PulseAudio server (default: own).")
    ] = None,
    json_out: Json = False,
) -> None:
    """Play 1 kHz at -12 dBFS for 1 s on the speakers; confirm it on the sink's monitor."""
    from edge_agent.room.errors import SpeakerError
    from edge_agent.room.speaker import validate_speakers
    from edge_agent.room.speaker_check import check_speakers

    spec = _profile(profile).speakers
    if spec is None:
        typer.echo(f"error: {profile} has no [speakers] table", err=True)
        raise typer.Exit(2)
    try:
        validate_speakers(spec, pulse_server=pulse_server)
        found = check_speakers(spec, pulse_server=pulse_server)
    except SpeakerError as err:
        _emit({"ok": False, "error": str(err)}, False, json_out, f"FAIL speakers: {err}")
        return
    result = {"ok": found.heard or not found.monitor, **vars(found)}
    if not found.monitor:
        text = f"OK speakers {spec.device}: tone played (no monitor here to confirm it: listen)"
    elif found.heard:
        text = (
            f"OK speakers {spec.device}: 1 kHz heard on {found.monitor} at "
            f"{found.level_dbfs:.1f} dBFS, {found.delay_ms:.0f} ms after it was played"
        )
    else:
        text = (
            f"FAIL speakers {spec.device}: tone played but not heard on {found.monitor}"
            "  → check that the sink is not muted ('pactl list sinks') and its volume"
        )
    _emit(result, bool(result["ok"]), json_out, text)
