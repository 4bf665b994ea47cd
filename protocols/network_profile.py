"""Network profiles (网络配置): the VLAN, subnet and bandwidth a recording classroom lives in.

A network profile is named and assigned per school or per classroom by the controller,
and sent to the agent, which enforces it: it streams only from the profile's VLAN and
subnet, marks DSCP on its media sockets and keeps every encoder on the profile's ladder.

Profiles are TOML (or JSON) documents; ``parse_network_profile`` turns one into a model
or raises ``NetworkProfileError`` naming the source, the field, the bad value and what
would be valid.
"""

from __future__ import annotations

import ipaddress
import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# DSCP code points by name (RFC 4594 / RFC 2474).
DSCP_NAMES: dict[str, int] = {
    "BE": 0,
    "CS1": 8,
    "AF11": 10,
    "AF21": 18,
    "AF31": 26,
    "AF41": 34,
    "AF42": 36,
    "CS4": 32,
    "CS5": 40,
    "EF": 46,
}


class NetworkProfileError(ValueError):
    """A network profile that cannot be used, with what to fix."""


class Rung(BaseModel):
    """One layer of the video ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=32)
    width: int = Field(ge=160, le=3840)
    height: int = Field(ge=90, le=2160)
    fps: int = Field(default=25, ge=5, le=60)
    kbps: int = Field(ge=100, le=20_000)


class NetworkProfile(BaseModel):
    """VLAN, subnet, bandwidth and the video ladder for a classroom (or a whole school)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    vlan_id: int | None = Field(default=None, description="802.1Q VLAN id, 1–4094")
    subnet: str | None = Field(default=None, description="CIDR of the recording VLAN")
    uplink_kbps: int = Field(default=0, ge=0, description="school uplink; 0: not known")
    classroom_cap_kbps: int = Field(gt=0, description="what one classroom may send")
    audio_kbps: int = Field(default=64, ge=16, le=256)
    dscp_audio: str = "EF"
    dscp_video: str = "AF41"
    ladder: tuple[Rung, ...] = Field(min_length=1)
    shaper: bool = False  # install a tc HTB shaper on the interface as a safety net

    @field_validator("vlan_id")
    @classmethod
    def _vlan(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 4094:
            raise ValueError(f"VLAN id {v} is outside 1–4094 (0 and 4095 are reserved)")
        return v

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(ipaddress.ip_network(v, strict=False))
        except ValueError:
            raise ValueError(
                f"{v!r} is not a subnet; write it as CIDR, e.g. 10.20.30.0/24"
            ) from None

    @field_validator("dscp_audio", "dscp_video")
    @classmethod
    def _dscp(cls, v: str) -> str:
        name = v.upper()
        if name not in DSCP_NAMES:
            raise ValueError(f"unknown DSCP mark {v!r}; use one of {', '.join(DSCP_NAMES)}")
        return name

    @model_validator(mode="after")
    def _ladder_fits(self) -> NetworkProfile:
        kbps = [r.kbps for r in self.ladder]
        if kbps != sorted(kbps, reverse=True):
            raise ValueError(
                "ladder rungs must go from the highest bitrate to the lowest, "
                f"got {' > '.join(str(k) for k in kbps)} kbps"
            )
        names = [r.name for r in self.ladder]
        if len(set(names)) != len(names):
            raise ValueError(f"ladder rung names repeat: {names}")
        top = self.ladder[0].kbps + self.audio_kbps
        if top > self.classroom_cap_kbps:
            raise ValueError(
                f"the top rung {self.ladder[0].name!r} ({self.ladder[0].kbps} kbps video + "
                f"{self.audio_kbps} kbps audio) exceeds the classroom cap of "
                f"{self.classroom_cap_kbps} kbps; lower the rung or raise the cap"
            )
        if self.uplink_kbps and self.classroom_cap_kbps > self.uplink_kbps:
            raise ValueError(
                f"classroom cap {self.classroom_cap_kbps} kbps exceeds the school uplink of "
                f"{self.uplink_kbps} kbps"
            )
        return self

    @property
    def dscp_audio_value(self) -> int:
        """DSCP code point for audio packets."""
        return DSCP_NAMES[self.dscp_audio]

    @property
    def dscp_video_value(self) -> int:
        """DSCP code point for video packets."""
        return DSCP_NAMES[self.dscp_video]

    def rung(self, name: str) -> Rung:
        """A rung by name; KeyError lists the rungs."""
        for r in self.ladder:
            if r.name == name:
                return r
        raise KeyError(
            f"no rung {name!r} in profile {self.name!r}; rungs: {[r.name for r in self.ladder]}"
        )


def parse_network_profile(doc: dict[str, Any], source: str) -> NetworkProfile:
    """Validate a decoded document; errors name ``source``, the field and the value."""
    try:
        return NetworkProfile.model_validate(doc)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(profile)"
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}{shown}")
        raise NetworkProfileError(f"network profile {source}: " + "; ".join(problems)) from None


def load_network_profile_toml(text: str, source: str) -> NetworkProfile:
    """Parse a TOML network profile; TOML syntax errors are NetworkProfileError too."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise NetworkProfileError(f"network profile {source}: not valid TOML: {err}") from None
    return parse_network_profile(doc, source)
