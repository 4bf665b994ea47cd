"""The rooms around a lesson rig: speakers, microphones and screens a person would use.

Each classroom gets null sinks on one private PulseAudio server (``<room>_spk`` for its
speakers, ``<room>_mic`` whose monitor is its microphone unless it keeps the synthetic
one), an Xvfb screen for its displays, and a hardware profile derived from the synthetic
one that names them. A :class:`RoomSimulator` closes each room's acoustic loop (or only
speaks into it), and the speakers' monitors are recorded; the receiving rooms' screens
are grabbed and their tiles read back. :func:`room_figures` turns that into the figures
a person in the room would notice.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import statistics
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchlib import room_audio as ra
from benchlib.pulse_server import PulseServer
from benchlib.rig import SYNTHETIC, LessonRig
from benchlib.room_sim import MonitorRecorder, RoomSimulator
from benchlib.screen_watch import ScreenWatch, TileSpot, first_seen

PANEL_W, PANEL_H = 1280, 720


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_profile(path: pathlib.Path, doc: dict[str, Any]) -> None:
    """Write a hardware profile document as TOML (the subset profiles use)."""
    lines: list[str] = []
    for key, value in doc.items():
        if not isinstance(value, dict | list):
            lines.append(f"{key} = {_toml(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {_toml(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{k} = {_toml(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Room:
    """One simulated classroom around an agent."""

    cid: str
    lead: bool
    voice: ra.Voice | None
    display: str
    screen_w: int
    screen_h: int
    sim: RoomSimulator | None = None
    speaker: MonitorRecorder | None = None
    mic: MonitorRecorder | None = None
    xvfb: subprocess.Popen[bytes] | None = None
    watch: ScreenWatch | None = None
    camera_width: int = 0


@dataclass(frozen=True)
class RoomPlan:
    """A classroom to set up: its id and school, whether it leads, its mouth, cameras."""

    cid: str
    school: str = ""
    lead: bool = False
    voice: ra.Voice | None = None
    camera_width: int = 0


@dataclass
class RoomRig:
    """Pulse, Xvfb, profiles and simulators for the classrooms of one lesson rig."""

    rig: LessonRig
    closed_loop: bool = True
    synthetic_mic: bool = False
    small_video: bool = False
    # The small video's frame rate: a test that reads only which camera a tile shows needs
    # few frames, and every frame is CPU the sound path under test does not get.
    small_fps: int = 15
    echo_cancel: bool = True
    # The rooms whose speakers the harness records (None: every room), and whether it
    # records each microphone. On two cores a recorder the test never reads is CPU the
    # agents under test do not get.
    listen_to: tuple[str, ...] | None = None
    hear_mics: bool = True
    pulse: PulseServer = field(default_factory=PulseServer)
    extra_env: dict[str, str] = field(default_factory=dict)
    rooms: dict[str, Room] = field(default_factory=dict)

    def start_pulse(self) -> None:
        """Start the sound server the rooms share."""
        self.pulse.start()

    def open(self, plans: list[RoomPlan], online_timeout: float = 30.0) -> None:
        """Everything up to a lesson: sound server, classrooms and their rooms, controller,
        enrolled agents online, and the rooms' acoustics and recorders running."""
        self.start_pulse()
        tokens = {p.cid: self.rig.add_classroom(p.cid, p.school) for p in plans}
        profiles = {
            p.cid: self.add_room(p.cid, p.lead, p.voice, camera_width=p.camera_width) for p in plans
        }
        self.rig.start_controller()
        for cid, token in tokens.items():
            self.rig.enrol_and_start_agent(cid, token, profiles[cid])
        self.rig.wait_online(list(tokens), timeout=online_timeout)
        self.start_rooms()

    def add_room(
        self, cid: str, lead: bool, voice: ra.Voice | None, camera_width: int = 0
    ) -> pathlib.Path:
        """Sinks, an X screen and a profile for classroom ``cid``; returns the profile.

        ``camera_width`` sets the cameras' width (16:9), so a room's picture can be told
        from another's on a screen by the size its code reads back at."""
        width = PANEL_W * 2 if lead else PANEL_W
        xvfb, display = start_xvfb(width, PANEL_H)
        room = Room(cid, lead, voice, display, width, PANEL_H, camera_width=camera_width)
        room.xvfb = xvfb
        self.pulse.add_sink(f"{cid}_spk")
        self.pulse.add_sink(f"{cid}_mic")
        self.rooms[cid] = room
        self.rig.agent_env[cid] = {"PULSE_SERVER": self.pulse.server, **self.extra_env}
        path = self.rig.root / f"{cid}.toml"
        write_profile(path, self._profile(room))
        return path

    def _profile(self, room: Room) -> dict[str, Any]:
        doc: dict[str, Any] = tomllib.loads(SYNTHETIC.read_text())
        doc["name"] = f"room-{room.cid}"
        for device in doc["devices"]:
            if device["kind"] == "microphone":
                device["echo_cancel"] = self.echo_cancel
                if not self.synthetic_mic:
                    device["driver"] = "pulse"
                    device["device"] = f"{room.cid}_mic.monitor"
            elif self.small_video:
                device.update(width=320, height=180, fps=self.small_fps, bitrate=300_000)
            if device["kind"] == "camera" and room.camera_width:
                w = room.camera_width
                device.update(width=w, height=w * 9 // 16)
        doc["speakers"] = {"driver": "pulse", "device": f"{room.cid}_spk"}
        displays = [
            {
                "name": "panel",
                "kind": "panel",
                "display": room.display,
                "width": PANEL_W,
                "height": PANEL_H,
            }
        ]
        if room.lead:
            displays.append(
                {
                    "name": "mid",
                    "kind": "mid_screen",
                    "display": room.display,
                    "x": PANEL_W,
                    "width": PANEL_W,
                    "height": PANEL_H,
                }
            )
        doc["displays"] = displays
        return doc

    def start_rooms(self) -> None:
        """Start each room's acoustics and the recorders of its speakers and microphone."""
        for room in self.rooms.values():
            server = self.pulse.server
            if not self.synthetic_mic:
                # A room that says nothing into an open loop needs no simulator: its
                # microphone's monitor is silence either way.
                if room.voice is not None or self.closed_loop:
                    room.sim = RoomSimulator(server, room.cid, room.voice, closed=self.closed_loop)
                    room.sim.start()
                if self.hear_mics:
                    room.mic = MonitorRecorder(server, f"{room.cid}_mic.monitor")
                    room.mic.start()
            if self.listen_to is None or room.cid in self.listen_to:
                room.speaker = MonitorRecorder(server, f"{room.cid}_spk.monitor")
                room.speaker.start()

    def watch_screen(self, cid: str, display: str = "panel") -> ScreenWatch:
        """Grab classroom ``cid``'s screen and read the tiles its agent reports."""
        room = self.rooms[cid]
        status = self.rig.root / cid / "room.json"

        def spots() -> list[TileSpot]:
            return tile_spots(status, display)

        room.watch = ScreenWatch(room.display, room.screen_w, room.screen_h, spots)
        room.watch.start()
        return room.watch

    def room_status(self, cid: str) -> dict[str, Any]:
        """The agent's ``room.json`` (tiles, playout, CPU)."""
        doc: dict[str, Any] = json.loads((self.rig.root / cid / "room.json").read_text())
        return doc

    def errors(self) -> list[str]:
        """What went wrong in the harness itself (streams that failed, screens not grabbed)."""
        out = []
        for room in self.rooms.values():
            for part in (room.sim, room.speaker, room.mic, room.watch):
                if part is not None and part.error:
                    out.append(part.error)
        return out

    def save(self, folder: pathlib.Path, start: float, end: float) -> None:
        """What each room's speakers and microphone carried in the window, as WAV files."""
        import wave

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "window.json").write_text(json.dumps({"start": start, "end": end}))
        for room in self.rooms.values():
            for what, rec in (("speakers", room.speaker), ("microphone", room.mic)):
                if rec is None:
                    continue
                x, _ = _window(rec, start, end)
                with wave.open(str(folder / f"{room.cid}-{what}.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(ra.RATE)
                    w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())

    def stop(self) -> None:
        """Stop the simulators, recorders, grabbers, screens and the sound server."""
        for room in self.rooms.values():
            for part in (room.sim, room.speaker, room.mic, room.watch):
                if part is not None:
                    part.stop()
            if room.xvfb is not None:
                room.xvfb.terminate()
                room.xvfb.wait(5)
        self.pulse.cleanup()


def start_xvfb(width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb screen on a display number it picks itself (``-displayfd``), so rigs and
    tests running side by side never fight over one; returns it and ``:N``."""
    read, write = os.pipe()
    screen = f"{width}x{height}x24"
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write,),
    )
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            number = pipe.readline().strip().decode()
    except OSError:
        number = ""
    deadline = time.monotonic() + 10
    while not number or not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if not number or proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("Xvfb did not start (is the xvfb package installed?)")
        time.sleep(0.05)
    return proc, f":{number}"


_spot_cache: dict[pathlib.Path, tuple[float, list[TileSpot]]] = {}


def tile_spots(status: pathlib.Path, display: str) -> list[TileSpot]:
    """Where the agent draws each feed on ``display`` (absolute screen position)."""
    try:
        mtime = status.stat().st_mtime
        cached = _spot_cache.get(status)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return []
    shown = doc.get("displays", {}).get(display)
    if not shown:
        return []
    spots = [
        TileSpot(
            t["key"],
            shown["x"] + t["x"],
            shown["y"] + t["y"],
            t["w"],
            t["h"],
            t["src_w"],
            t["src_h"],
        )
        for t in shown["tiles"]
        if t["src_w"] and t["src_h"]
    ]
    _spot_cache[status] = (mtime, spots)
    return spots


def _pct(values: list[float], q: float) -> float | None:
    v = ra.percentile(values, q)
    return None if v is None else round(v, 1)


def _window(rec: MonitorRecorder, start: float, end: float) -> tuple[np.ndarray, float]:
    """Samples of a recording between two wall times, and the time of the first."""
    x = rec.heard.samples()
    t0 = rec.heard.t0 or start
    a = max(0, int((start - t0) * ra.RATE))
    b = max(a, int((end - t0) * ra.RATE))
    return x[a:b], t0 + a / ra.RATE


def mouth_to_ear(
    speaker: MonitorRecorder,
    voice: ra.Voice,
    start: float,
    end: float,
    listener: ra.Voice | None = None,
) -> list[float]:
    """Each burst's delay from the talker's mouth to the listener's speakers, ms.

    The talker says each burst on its moment of the wall clock (the simulator places it
    by its playback stream's latency, or the synthetic microphone stamps it), so a burst
    heard at the speakers tells its own delay. With ``listener``, only the seconds that
    room is silent count (the delay of the sound, not how an echo canceller treats double
    talk)."""
    heard = speaker.heard.samples()
    t_heard = speaker.heard.t0 or start
    out = []
    for second in np.arange(math.ceil(start), math.floor(end) - 1):
        if not voice.speaks_in(np.array([float(second)]))[0]:
            continue
        said = second + voice.offset_s
        # The other room talks, or its last words are still on their way to the talker's
        # speakers: the talker's echo canceller hears double talk and may duck the burst.
        if listener is not None and listener.talking(np.arange(said - 0.5, said + 1.0, 0.05)).any():
            continue
        arrived = ra.onset_in(heard, t_heard, voice.burst_hz, said, said + 0.9)
        if arrived is not None:
            out.append((arrived - said) * 1000.0)
    return out


def screen_latency(watch: ScreenWatch, key: str, start: float, end: float) -> dict[int, float]:
    """Capture → on screen, ms, for each frame of tile ``key`` first seen in the window."""
    return {
        counter: (at - capture_ms / 1000.0) * 1000.0
        for counter, (at, capture_ms) in first_seen(watch.sightings, key).items()
        if start <= at <= end
    }


def av_sync_ms(
    watch: ScreenWatch, key: str, audio_delays_ms: list[float], start: float, end: float
) -> float | None:
    """Sound ahead of picture, ms (ITU-R BT.1359's sign: + is sound early)."""
    video = list(screen_latency(watch, key, start, end).values())
    if not video or not audio_delays_ms:
        return None
    return round(statistics.median(video) - statistics.median(audio_delays_ms), 1)


def howl(rec: MonitorRecorder, start: float, end: float) -> tuple[bool, list[float]]:
    """Whether the level at a speaker keeps growing: the loudest second of the last 10 s
    over the loudest of the first 10 s by more than 6 dB (loudest, so a class taking
    turns does not read as growth), or clipping; with the per-second levels."""
    x, _ = _window(rec, start, end)
    levels = [ra.rms_dbfs(x[i : i + ra.RATE]) for i in range(0, x.size - ra.RATE + 1, ra.RATE)]
    finite = [v if math.isfinite(v) else -120.0 for v in levels]
    if len(finite) < 20:
        return False, finite
    first, last = max(finite[:10]), max(finite[-10:])
    clipped = float(np.mean(np.abs(x) > 0.99)) > 0.01 if x.size else False
    return (last - first > 6.0) or clipped, [round(v, 1) for v in finite]


def inserted_silence_ms(
    talker: ra.Voice,
    speaker: MonitorRecorder,
    delay_ms: float,
    start: float,
    end: float,
    listener: ra.Voice | None = None,
) -> float:
    """The longest silence at the listener's speakers while the talker was talking
    ``delay_ms`` earlier (and, with ``listener``, that room was not): what the playout
    inserted, not the pauses of the talker's speech (known from the talker's own text,
    as the simulator says it on the wall clock)."""
    heard, t_heard = _window(speaker, start, end)
    quiet = ra.silent_windows(heard)
    said = talker.block(t_heard - delay_ms / 1000.0, heard.size)
    talking = ~ra.silent_windows(said, below_dbfs=-50.0)
    if listener is not None:  # while the listening room talks too, its echo canceller
        # may rightly duck the talker: that is double talk, not a hole in the playout
        t = t_heard + np.arange(talking.size) * ra.HOP / ra.RATE - delay_ms / 1000.0
        talking &= ~listener.talking(t)
    n = min(quiet.size, talking.size)
    return ra.longest_run_ms(quiet[:n] & talking[:n])


def echo_return_db(
    talker_speaker: MonitorRecorder,
    listener_speaker: MonitorRecorder,
    voice: ra.Voice,
    start: float,
    end: float,
    listener: ra.Voice | None = None,
) -> float:
    """How loud the talker's own bursts come back at the talker's speakers, against how
    loud they are at the listener's (both at the speakers; see room_audio.echo_return_db)."""
    back, t_back = _window(talker_speaker, start, end)
    heard, t_heard = _window(listener_speaker, start, end)
    return round(ra.echo_return_db(back, t_back, heard, t_heard, voice, listener), 1)


def cpu_pct(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """The room threads' CPU between two ``room.json`` readings, % of one core."""
    try:
        wall = after["at"] - before["at"]
        used = after["cpu_s"]["room"] - before["cpu_s"]["room"]
    except (KeyError, TypeError):
        return None
    return round(100.0 * used / wall, 1) if wall > 0 else None


def screen_rates(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Redraws per second of each display and new pictures per second of each tile's feed."""
    wall = after.get("at", 0) - before.get("at", 0)
    b, a = before.get("screens") or {}, after.get("screens") or {}
    if wall <= 0 or not a:
        return {}
    return {
        part: {
            k: round((v - (b.get(part) or {}).get(k, 0)) / wall, 1)
            for k, v in (a.get(part) or {}).items()
        }
        for part in ("drawn", "shown")
    }


def cpu_by_thread(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Each room thread's CPU between two ``room.json`` readings, % of one core."""
    wall = after.get("at", 0) - before.get("at", 0)
    if wall <= 0:
        return {}
    b, a = before.get("cpu_s", {}), after.get("cpu_s", {})
    return {k: round(100.0 * (a[k] - b.get(k, 0.0)) / wall, 1) for k in a if k != "process"}
