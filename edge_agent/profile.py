"""Hardware profiles (硬件配置): which devices a classroom has and how to open them.

A profile is a TOML file validated at start-up. Every error names the file, the field,
the bad value and what would be valid.
"""

from __future__ import annotations

import hashlib
import pathlib
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_agent.errors import ProfileError

VIDEO_CODECS = ("libx264", "h264_vaapi", "h264_qsv", "h264_nvenc", "h264_v4l2m2m")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
ROLES = {
    "camera": ("teacher", "student", "board", "wide"),
    "panel": ("content",),
    "microphone": ("room",),
}


class EncoderSettings(BaseModel):
    """How video is encoded on this box."""

    model_config = ConfigDict(extra="forbid")
    video_codec: Literal["libx264", "h264_vaapi", "h264_qsv", "h264_nvenc", "h264_v4l2m2m"] = (
        "libx264"
    )
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    gop_seconds: float = Field(default=2.0, ge=0.5, le=10.0)


DRIVERS = {
    "camera": ("synthetic", "rtsp", "v4l2"),
    "panel": ("synthetic", "v4l2", "x11grab"),
    "microphone": ("synthetic", "alsa", "pulse"),
}
LAYOUTS = ("remote_full_local_corner", "side_by_side", "remote_only")


class Ptz(BaseModel):
    """A PTZ head driven by VISCA over IP, with its presets by name."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=52381, ge=1, le=65535)
    presets: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Ptz:
        for name, number in self.presets.items():
            if not 0 <= number <= 254:
                raise ValueError(f"preset {name!r} = {number} is out of range; use 0..254")
        return self


class Device(BaseModel):
    """One camera, panel capture or microphone."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    kind: Literal["camera", "panel", "microphone"]
    role: str
    driver: Literal["synthetic", "rtsp", "v4l2", "x11grab", "alsa", "pulse"]
    # rtsp: rtsp://user:pass@host/path; v4l2: /dev/videoN; x11grab: :0.0+0,0;
    # alsa: hw:CARD,DEV or plughw:…; pulse: a source name or "default".
    url: str = ""
    device: str = ""
    # v4l2: the native format to ask for (h264 is passed through); auto picks the best.
    input_format: Literal["auto", "h264", "mjpeg", "yuyv422", "nv12"] = "auto"
    # rtsp: send H.264 as the camera encoded it (no re-encode).
    passthrough: bool = True
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    # microphone: cancel the panel speakers' sound out of this microphone.
    echo_cancel: bool = False
    ptz: Ptz | None = None
    width: int = Field(default=0, ge=0, le=3840)
    height: int = Field(default=0, ge=0, le=2160)
    fps: int = Field(default=0, ge=0, le=60)
    bitrate: int = Field(ge=6_000, le=20_000_000)

    @model_validator(mode="after")
    def _check(self) -> Device:
        valid = ROLES[self.kind]
        if self.role not in valid:
            raise ValueError(
                f"role {self.role!r} is not valid for a {self.kind}; use one of {', '.join(valid)}"
            )
        drivers = DRIVERS[self.kind]
        if self.driver not in drivers:
            raise ValueError(
                f"driver {self.driver!r} cannot serve a {self.kind}; use one of "
                f"{', '.join(drivers)}"
            )
        self._check_address()
        if self.kind != "microphone":
            if self.width < 256 or self.height < 144 or self.fps < 1:
                raise ValueError(
                    f"video device {self.name!r} needs width ≥ 256, height ≥ 144 and fps ≥ 1"
                )
            if self.width % 2 or self.height % 2:
                raise ValueError(
                    f"width and height of {self.name!r} must be even "
                    f"(got {self.width}x{self.height}) for 4:2:0 video"
                )
        if self.echo_cancel and self.kind != "microphone":
            raise ValueError("echo_cancel applies to microphones only")
        if self.ptz is not None and self.kind != "camera":
            raise ValueError("ptz applies to cameras only")
        return self

    def _check_address(self) -> None:
        if self.driver == "rtsp" and not self.url.startswith(("rtsp://", "rtsps://")):
            raise ValueError(
                f'an rtsp device needs url = "rtsp://HOST[:PORT]/PATH" (got {self.url!r})'
            )
        if self.driver == "v4l2" and not self.device.startswith("/dev/video"):
            raise ValueError(
                f'a v4l2 device needs device = "/dev/videoN" (got {self.device!r}); '
                "'classroom-agent devices' lists them"
            )
        if self.driver == "x11grab" and not self.device.startswith(":"):
            raise ValueError(
                f'an x11grab panel needs device = ":DISPLAY.SCREEN[+X,Y]", e.g. ":0.0" '
                f"(got {self.device!r})"
            )
        if self.driver == "alsa" and not self.device:
            raise ValueError(
                'an alsa microphone needs device = "hw:CARD,DEV" (or plughw:…); '
                "'classroom-agent devices' lists the capture cards"
            )

    @property
    def media_kind(self) -> str:
        """'audio' for microphones, 'video' otherwise."""
        return "audio" if self.kind == "microphone" else "video"


class PanelOutput(BaseModel):
    """The remote classroom shown full-screen on the interactive panel."""

    model_config = ConfigDict(extra="forbid")
    display: str = Field(default=":0", pattern=r"^:[0-9]+(\.[0-9]+)?$")
    layout: Literal["remote_full_local_corner", "side_by_side", "remote_only"] = (
        "remote_full_local_corner"
    )
    fullscreen: bool = True
    width: int = Field(default=1920, ge=320, le=7680)
    height: int = Field(default=1080, ge=240, le=4320)
    # The local source shown in the corner (remote_full_local_corner, side_by_side).
    local: str = ""


class Speakers(BaseModel):
    """The room's loudspeakers (扬声器): what the remote classrooms' sound plays through.

    ``driver = "pulse"``: a PulseAudio or PipeWire sink by name (``device = ""`` takes the
    server's default sink); ``driver = "alsa"``: an ALSA playback PCM such as
    ``hw:CARD=Panel,DEV=3`` or ``default``. Checked at start-up: a sink that is not there
    is refused with the list of sinks that are.
    """

    model_config = ConfigDict(extra="forbid")
    driver: Literal["pulse", "alsa"] = "pulse"
    device: str = Field(default="", max_length=200)
    # The speaker's own buffer, ms: lower is less delay, higher survives a busy PC.
    latency_ms: int = Field(default=40, ge=10, le=500)
    # Gain applied before the limiter (the room's amplifier does the rest).
    volume_db: float = Field(default=0.0, ge=-60.0, le=12.0)
    # How far the rooms that do not have the floor are turned down (lead room, 课堂互动).
    duck_db: float = Field(default=-18.0, ge=-60.0, le=0.0)

    @model_validator(mode="after")
    def _check(self) -> Speakers:
        if self.driver == "alsa" and not self.device:
            raise ValueError(
                'alsa speakers need device = "hw:CARD,DEV" (or "default"); '
                "'aplay -L' lists the playback PCMs"
            )
        return self


class Display(BaseModel):
    """One screen of the room and what it shows, by the classroom's role in a lesson.

    ``kind = "panel"``: the 80-inch interactive panel; ``kind = "mid_screen"``: the
    teacher's mid-screen (教师专用中屏) of a recording classroom. ``layout = "auto"`` picks
    by role: a receiving room's panel shows the lead teacher and the lead's courseware side
    by side; the lead's mid-screen shows every receiving room in a grid (the room with the
    floor large); the lead's panel shows the local courseware (``local``).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="panel", pattern=r"^[a-z0-9_-]{1,32}$")
    kind: Literal["panel", "mid_screen"] = "panel"
    # The X display; a second screen of the same desktop is a window placed at x, y.
    display: str = Field(default=":0", pattern=r"^:[0-9]+(\.[0-9]+)?$")
    x: int = Field(default=0, ge=0, le=15360)
    y: int = Field(default=0, ge=0, le=8640)
    width: int = Field(default=1920, ge=320, le=7680)
    height: int = Field(default=1080, ge=240, le=4320)
    fullscreen: bool = True
    layout: Literal[
        "auto",
        "teacher_and_content",
        "content_with_teacher_inset",
        "rooms_grid",
        "local_content",
        "remote_full_local_corner",
        "side_by_side",
        "remote_only",
    ] = "auto"
    # A local device shown by this display (local_content, or the corner of the older
    # layouts); for the lead's panel, its courseware capture.
    local: str = ""
    # Redraws a second at most; 0 picks by kind: 30 on the panel (the lead teacher moves),
    # 15 on the mid-screen (a grid of classes, half the drawing cost).
    fps: int = Field(default=0, ge=0, le=60)

    @property
    def frame_rate(self) -> int:
        """The redraw rate in use (``fps``, or the kind's default)."""
        return self.fps or (15 if self.kind == "mid_screen" else 30)


class FloorKeys(BaseModel):
    """Keys that change the floor from the room (a teacher's clicker sends Page Up/Down).

    Names are SDL key names as pygame spells them (``page down``, ``f5``, ``b``…); an
    empty name maps nothing.
    """

    model_config = ConfigDict(extra="forbid")
    next: str = Field(default="page down", max_length=32)  # call on the next receiving room
    previous: str = Field(default="page up", max_length=32)
    release: str = Field(default="escape", max_length=32)  # nobody has the floor
    mute: str = Field(default="m", max_length=32)  # mute / unmute the room with the floor


class DirectorSettings(BaseModel):
    """The director (导播): which recordings a lesson makes and the live push.

    ``mode``: ``resource`` records each source on its own (the default, no director),
    ``movie`` records the director's programme (one picture with picture-in-picture and
    the room's sound), ``both`` records both. ``push_url`` pushes the programme over RTMP
    (a live platform such as DingTalk or WeChat) while the lesson is live.
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["resource", "movie", "both"] = "resource"
    width: int = Field(default=1280, ge=320, le=3840)
    height: int = Field(default=720, ge=180, le=2160)
    fps: int = Field(default=25, ge=5, le=60)
    bitrate: int = Field(default=2_500_000, ge=200_000, le=20_000_000)
    push_url: str = Field(default="", pattern=r"^(rtmps?://\S+)?$")

    @property
    def programme(self) -> bool:
        """Whether the programme is made (movie mode, both, or a live push)."""
        return self.mode != "resource" or bool(self.push_url)


class HardwareProfile(BaseModel):
    """A whole classroom's devices and encoder settings."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    encoder: EncoderSettings = EncoderSettings()
    devices: list[Device] = Field(min_length=1)
    output: PanelOutput | None = None
    director: DirectorSettings = DirectorSettings()
    speakers: Speakers | None = None
    displays: list[Display] = Field(default_factory=list, max_length=2)
    floor_keys: FloorKeys = FloorKeys()

    @model_validator(mode="after")
    def _unique(self) -> HardwareProfile:
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        if self.director.programme and not any(d.role == "teacher" for d in self.devices):
            raise ValueError(
                f"director.mode = {self.director.mode!r} (or a push_url) needs a camera with "
                "role 'teacher' to direct; add one or set mode = 'resource'"
            )
        if self.output is not None and self.output.local and self.output.local not in names:
            raise ValueError(
                f"output.local = {self.output.local!r} is not a device of this profile; "
                f"use one of {', '.join(names)}"
            )
        self._check_displays(names)
        return self

    def _check_displays(self, names: list[str]) -> None:
        if self.output is not None and self.displays:
            raise ValueError(
                "declare the screens either as [output] (one panel, older profiles) or as "
                "[[displays]], not both"
            )
        shown = [d.name for d in self.displays]
        dupes = sorted({n for n in shown if shown.count(n) > 1})
        if dupes:
            raise ValueError(f"display names must be unique; repeated: {', '.join(dupes)}")
        kinds = [d.kind for d in self.displays]
        if kinds.count("panel") > 1 or kinds.count("mid_screen") > 1:
            raise ValueError("a classroom has at most one panel and one mid_screen display")
        if len({d.display for d in self.displays}) > 1:
            raise ValueError(
                "both displays must be on the same X display (place the second with x, y)"
            )
        for d in self.displays:
            if d.local and d.local not in names:
                raise ValueError(
                    f"displays ({d.name}).local = {d.local!r} is not a device of this profile; "
                    f"use one of {', '.join(names)}"
                )

    @property
    def screens(self) -> list[Display]:
        """The room's displays; an older ``[output]`` is read as one panel display."""
        if self.displays:
            return list(self.displays)
        if self.output is None:
            return []
        out = self.output
        return [
            Display(
                name="panel",
                kind="panel",
                display=out.display,
                width=out.width,
                height=out.height,
                fullscreen=out.fullscreen,
                layout=out.layout,
                local=out.local,
            )
        ]

    def by_role(self, role: str) -> list[Device]:
        """Devices with the given role."""
        return [d for d in self.devices if d.role == role]

    def device(self, name: str) -> Device:
        """A device by name."""
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)


class LoadedProfile(BaseModel):
    """A validated profile with where it came from and its digest."""

    path: str
    digest: str
    profile: HardwareProfile


def load_profile(path: pathlib.Path) -> LoadedProfile:
    """Read and validate a profile, or raise ``ProfileError`` naming file, field and fix."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ProfileError(
            f"{path}: cannot read hardware profile ({err.strerror}); check "
            "the path, or list the shipped ones in hardware_profiles/"
        ) from err
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ProfileError(f"{path}: not valid UTF-8 TOML: {err}") from err
    try:
        profile = HardwareProfile.model_validate(doc)
    except ValidationError as err:
        raise ProfileError(_explain(path, doc, err)) from err
    return LoadedProfile(path=str(path), digest=hashlib.sha256(raw).hexdigest(), profile=profile)


def _explain(path: pathlib.Path, doc: object, err: ValidationError) -> str:
    lines = [f"{path}: invalid hardware profile"]
    for item in err.errors():
        loc = list(item["loc"])
        field = _field_name(doc, loc)
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {field}{shown}: {item['msg']}")
    return "\n".join(lines)


def _field_name(doc: object, loc: list[int | str]) -> str:
    """'devices[2] (teacher).bitrate' rather than 'devices.2.bitrate'."""
    parts: list[str] = []
    node = doc
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict):
                name = node[key].get("name")
                if name:
                    label += f" ({name})"
            parts.append(label)
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            if key.startswith("function-after") or key.startswith("literal"):
                continue
            parts.append(("." if parts else "") + key)
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"
