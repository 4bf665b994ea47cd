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


class Device(BaseModel):
    """One camera, panel capture or microphone."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    kind: Literal["camera", "panel", "microphone"]
    role: str
    driver: Literal["synthetic"]
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
        return self

    @property
    def media_kind(self) -> str:
        """'audio' for microphones, 'video' otherwise."""
        return "audio" if self.kind == "microphone" else "video"


class HardwareProfile(BaseModel):
    """A whole classroom's devices and encoder settings."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    encoder: EncoderSettings = EncoderSettings()
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> HardwareProfile:
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        return self

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
