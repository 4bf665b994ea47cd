"""The media plane's configuration: which backend carries lessons' media, and the Janus
instances with their addresses, admin secret and capacity, loaded from a TOML file and
checked once at start-up (see sample.toml beside this module)."""

from __future__ import annotations

import pathlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from controller.media_plane.exceptions import ConfigError

BACKENDS = ("builtin", "janus")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_INSTANCES = 64
MAX_CAPACITY = 10_000
MAX_FILE_BYTES = 256 * 1024
TOP_KEYS = frozenset({"media_plane", "janus"})
PLANE_KEYS = frozenset(
    {
        "backend",
        "fallback_to_builtin",
        "poll_interval_s",
        "request_timeout_s",
        "down_after_failures",
    }
)
INSTANCE_KEYS = frozenset({"api_url", "admin_url", "admin_secret", "capacity"})


@dataclass(frozen=True)
class JanusInstance:
    """One Janus server: where its API and admin API answer, and how many lessons fit."""

    name: str
    api_url: str
    admin_url: str
    admin_secret: str = field(repr=False)
    capacity: int

    def setting(self, key: str) -> str:
        """How the file spells one of this instance's settings, for error messages."""
        return f"[janus.{self.name}] {key}"


@dataclass(frozen=True)
class WatchSettings:
    """How often the health watcher polls, how long it waits, and when it gives up."""

    poll_interval_s: float = 2.0
    request_timeout_s: float = 2.0
    down_after_failures: int = 2

    @property
    def down_within_s(self) -> float:
        """The longest a dead or silent instance can still be counted healthy."""
        return self.down_after_failures * (self.poll_interval_s + self.request_timeout_s)


@dataclass(frozen=True)
class MediaPlaneConfig:
    """The backend (``builtin`` or ``janus``), its fallback rule and the Janus instances."""

    backend: str = "builtin"
    fallback_to_builtin: bool = False
    watch: WatchSettings = field(default_factory=WatchSettings)
    instances: tuple[JanusInstance, ...] = ()

    def instance(self, name: str) -> JanusInstance:
        """The instance called ``name`` (KeyError if there is none)."""
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)


def load_config(path: pathlib.Path) -> MediaPlaneConfig:
    """Read and check ``path``; ``ConfigError`` names the file and the setting."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(where, "file", f"cannot be read ({err.strerror})") from err
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(where, "file", f"larger than {MAX_FILE_BYTES} bytes")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        # tomllib also refuses a [janus.NAME] table given twice, naming its line.
        raise ConfigError(where, "file", f"not valid TOML: {err}") from err
    return parse_config(doc, where)


def exposed_secrets(path: pathlib.Path, config: MediaPlaneConfig) -> str | None:
    """A warning when ``path`` holds admin secrets and other users may read it."""
    if not config.instances:
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & 0o077 == 0:
        return None
    return (
        f"{path} holds Janus admin secrets and other users may read it "
        f"(mode {mode & 0o777:o}): chmod 600 {path}"
    )


def parse_config(doc: Mapping[str, Any], where: str = "media plane config") -> MediaPlaneConfig:
    """Check a parsed TOML document; ``ConfigError`` names the setting that is wrong."""
    _no_unknown(doc, TOP_KEYS, "", where)
    plane = doc.get("media_plane", {})
    if not isinstance(plane, dict):
        raise ConfigError(where, "[media_plane]", "must be a table")
    _no_unknown(plane, PLANE_KEYS, "[media_plane] ", where)
    backend = plane.get("backend", "builtin")
    if backend not in BACKENDS:
        raise ConfigError(where, "[media_plane] backend", f"{backend!r} is not one of {BACKENDS}")
    fallback = plane.get("fallback_to_builtin", False)
    if not isinstance(fallback, bool):
        raise ConfigError(where, "[media_plane] fallback_to_builtin", "must be true or false")
    watch = WatchSettings(
        poll_interval_s=_number(plane, "poll_interval_s", 2.0, 0.2, 60.0, where),
        request_timeout_s=_number(plane, "request_timeout_s", 2.0, 0.1, 30.0, where),
        down_after_failures=int(_number(plane, "down_after_failures", 2, 1, 10, where, whole=True)),
    )
    tables = doc.get("janus", {})
    if not isinstance(tables, dict):
        raise ConfigError(where, "[janus]", "must hold one [janus.NAME] table per instance")
    if len(tables) > MAX_INSTANCES:
        raise ConfigError(where, "[janus]", f"more than {MAX_INSTANCES} instances")
    instances = tuple(_instance(name, body, where) for name, body in tables.items())
    _cross_check(backend, instances, where)
    return MediaPlaneConfig(backend, fallback, watch, instances)


def _no_unknown(table: Mapping[str, Any], known: frozenset[str], prefix: str, where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            where, f"{prefix}{unknown[0]}", f"unknown setting (known: {', '.join(sorted(known))})"
        )


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    where: str,
    *,
    whole: bool = False,
    prefix: str = "[media_plane] ",
) -> float:
    value: Any = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (whole and not isinstance(value, int))
        or not low <= value <= high
    ):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(
            where, f"{prefix}{key}", f"{value!r}: must be {kind} from {low:g} to {high:g}"
        )
    return float(value)


def _url(body: Mapping[str, Any], key: str, setting: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(where, setting, "missing: give the URL, e.g. http://10.0.0.5:8088/janus")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise ConfigError(where, setting, f"{value!r} is not a URL ({err})") from err
    if (
        len(value) > 2000
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            where,
            setting,
            f"{value!r} is not a plain http(s) URL with a host (no user, query or fragment)",
        )
    del port
    return value.rstrip("/")


def _instance(name: str, body: object, where: str) -> JanusInstance:
    prefix = f"[janus.{name}]"
    if not NAME.match(name):
        raise ConfigError(
            where, prefix, "the name must be 1-40 lower-case letters, digits, '-' or '_'"
        )
    if not isinstance(body, dict):
        raise ConfigError(where, prefix, "must be a table of settings")
    _no_unknown(body, INSTANCE_KEYS, f"{prefix} ", where)
    api_url = _url(body, "api_url", f"{prefix} api_url", where)
    admin_url = _url(body, "admin_url", f"{prefix} admin_url", where)
    if admin_url == api_url:
        raise ConfigError(
            where,
            f"{prefix} admin_url",
            "is the same as api_url: the admin API has its own port and path (/admin)",
        )
    secret = body.get("admin_secret")
    if not isinstance(secret, str) or not 8 <= len(secret) <= 256 or secret != secret.strip():
        raise ConfigError(
            where,
            f"{prefix} admin_secret",
            "must be the instance's admin_secret (janus.jcfg), 8 to 256 characters",
        )
    if "capacity" not in body:
        raise ConfigError(where, f"{prefix} capacity", "missing: how many lessons it carries")
    capacity = int(
        _number(body, "capacity", 0, 1, MAX_CAPACITY, where, whole=True, prefix=f"{prefix} ")
    )
    return JanusInstance(name, api_url, admin_url, secret, capacity)


def _cross_check(backend: str, instances: tuple[JanusInstance, ...], where: str) -> None:
    if backend == "janus" and not instances:
        raise ConfigError(
            where, "[media_plane] backend", "is 'janus' but no [janus.NAME] instance is given"
        )
    seen: dict[str, str] = {}
    for inst in instances:
        for key in ("api_url", "admin_url"):
            url = getattr(inst, key)
            if url.lower() in seen:
                raise ConfigError(
                    where,
                    inst.setting(key),
                    f"{url} is already {seen[url.lower()]}: one Janus counted twice "
                    "would be given twice its capacity",
                )
            seen[url.lower()] = inst.setting(key)
