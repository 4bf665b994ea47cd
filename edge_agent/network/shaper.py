"""An optional kernel safety net: cap what the classroom PC sends with a tc HTB shaper.

The encoders already stay on the network profile's ladder; the shaper is for when they do
not (a misbehaving encoder, a burst of retransmissions). It is off by default
(``shaper = false`` in the profile) and needs ``CAP_NET_ADMIN``. On the interface the
placement check picked it installs::

    tc qdisc replace dev IFACE root handle 1: htb default 10
    tc class replace dev IFACE parent 1: classid 1:10 htb rate CAPkbit ceil CAPkbit
    tc qdisc replace dev IFACE parent 1:10 handle 10: bfifo limit BYTES

Everything the interface sends falls into class 1:10 (``default 10``; both numbers are
hexadecimal minors to tc), capped at ``classroom_cap_kbps``. The leaf queue holds at most
:data:`QUEUE_S` of traffic at the cap: a live lesson is better served by a dropped packet,
which the congestion control reacts to, than by seconds of queue (the default leaf
queue is 1000 packets, 2.4 s at 5 Mbit/s).

Applying is idempotent: HTB cannot be "changed" in place, so an existing ``htb 1:`` root
with ``default 10`` is kept, any other root qdisc is replaced, and the class and the leaf
are replaced. The shaper owns the interface's root qdisc while installed;
:func:`remove_shaper` deletes it only if it is ours (``htb`` with handle ``1:``).

``tc_command`` lets tests run tc in a network namespace (``ip netns exec NS tc``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edge_agent.errors import AgentError

HANDLE: Final = "1:"
CLASS_ID: Final = "1:10"
DEFAULT_MINOR: Final = "10"  # tc reads it as hex, like the minor of CLASS_ID
QUEUE_S: Final = 0.2
MIN_QUEUE_BYTES: Final = 16_000
TC_TIMEOUT_S: Final = 10.0

_CLASS_LINE: Final = re.compile(
    r"^class htb (?P<id>\S+) .*?\brate (?P<rate>\d+(?:\.\d+)?)(?P<rate_unit>[KMGT]?)bit "
    r"ceil (?P<ceil>\d+(?:\.\d+)?)(?P<ceil_unit>[KMGT]?)bit",
    re.MULTILINE,
)
_UNIT: Final = {"": 1e-3, "K": 1.0, "M": 1e3, "G": 1e6, "T": 1e9}  # to kbit


class ShaperError(AgentError):
    """The shaper could not be read, installed or removed; says what to do."""


@dataclass(frozen=True)
class ShaperState:
    """What tc reports on an interface: the root qdisc and the HTB classes (kbit/s)."""

    root_kind: str | None = None
    root_handle: str | None = None
    default_class: str | None = None  # "1:10" from htb's "default 0x10"
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (rate, ceil)
    leaf_kind: str | None = None  # the qdisc under CLASS_ID

    @property
    def ours(self) -> bool:
        """The root qdisc is this module's HTB."""
        return self.root_kind == "htb" and self.root_handle == HANDLE

    def cap_kbps(self) -> int | None:
        """The installed cap, if the shaper is fully installed."""
        if not self.ours or self.default_class != CLASS_ID or CLASS_ID not in self.classes:
            return None
        return self.classes[CLASS_ID][1]


def queue_bytes(cap_kbps: int) -> int:
    """The leaf queue's byte limit: :data:`QUEUE_S` at the cap, at least 16 kB."""
    return max(MIN_QUEUE_BYTES, int(cap_kbps * 1000 / 8 * QUEUE_S))


def shaper_commands(
    iface: str, cap_kbps: int, current: ShaperState | None = None
) -> list[list[str]]:
    """The tc arguments (without ``tc``) that install the shaper over ``current``."""
    if cap_kbps <= 0:
        raise ValueError(f"cap {cap_kbps} kbit/s must be positive")
    if not iface or len(iface.split()) != 1:
        raise ValueError(f"{iface!r} is not an interface name")
    commands: list[list[str]] = []
    if current is None or not (current.ours and current.default_class == CLASS_ID):
        if current is not None and current.root_handle == HANDLE:
            # Same handle, other kind or default: replace cannot change it, delete it first.
            commands.append(f"qdisc del dev {iface} root".split())
        commands.append(
            f"qdisc replace dev {iface} root handle {HANDLE} htb default {DEFAULT_MINOR}".split()
        )
    rate = f"{cap_kbps}kbit"
    commands.append(
        f"class replace dev {iface} parent {HANDLE} classid {CLASS_ID} htb "
        f"rate {rate} ceil {rate}".split()
    )
    commands.append(
        f"qdisc replace dev {iface} parent {CLASS_ID} handle 10: bfifo "
        f"limit {queue_bytes(cap_kbps)}".split()
    )
    return commands


def _run(tc_command: Sequence[str], args: list[str], iface: str) -> str:
    argv = [*tc_command, *args]
    shown = " ".join(["tc", *args])
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TC_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise ShaperError(
            f"cannot run {argv[0]!r} for the traffic shaper: not found; install iproute2 "
            "(apt-get install iproute2), or set shaper = false in the network profile"
        ) from None
    except subprocess.TimeoutExpired:
        raise ShaperError(f"'{shown}' did not finish in {TC_TIMEOUT_S:.0f} s") from None
    if done.returncode == 0:
        return done.stdout
    err = done.stderr.strip() or f"exit status {done.returncode}"
    if "Operation not permitted" in err or "Permission denied" in err:
        raise ShaperError(
            f"'{shown}' was refused ({err}): the traffic shaper needs CAP_NET_ADMIN (run "
            "the agent as root or with AmbientCapabilities=CAP_NET_ADMIN in its systemd "
            "unit); it is off by default, set shaper = false in the network profile to "
            "run without it"
        )
    if "Cannot find device" in err:
        raise ShaperError(
            f"'{shown}' failed: there is no interface {iface!r} (see 'ip link'); "
            "check the placement of the PC and the network profile"
        )
    if "qdisc kind is unknown" in err:
        raise ShaperError(
            f"'{shown}' failed ({err}): the kernel lacks the qdisc (sch_htb / sch_fifo); "
            "load the module or set shaper = false in the network profile"
        )
    raise ShaperError(f"'{shown}' failed: {err}")


def _parse_state(qdisc_json: str, class_text: str) -> ShaperState:
    try:
        qdiscs: list[dict[str, Any]] = json.loads(qdisc_json or "[]")
    except json.JSONDecodeError as err:
        raise ShaperError(
            f"'tc -j qdisc show' printed something that is not JSON ({err}); "
            "is this iproute2 older than 4.13?"
        ) from None
    root = next((q for q in qdiscs if q.get("root")), None)
    leaf = next((q for q in qdiscs if q.get("parent") == CLASS_ID), None)
    default_class = None
    if root is not None and root.get("kind") == "htb":
        minor = str(root.get("options", {}).get("default", "0"))
        default_class = f"{root['handle']}{int(minor, 16):x}"
    classes = {
        m["id"]: (
            round(float(m["rate"]) * _UNIT[m["rate_unit"]]),
            round(float(m["ceil"]) * _UNIT[m["ceil_unit"]]),
        )
        for m in _CLASS_LINE.finditer(class_text)
    }
    return ShaperState(
        root_kind=root.get("kind") if root else None,
        root_handle=root.get("handle") if root else None,
        default_class=default_class,
        classes=classes,
        leaf_kind=leaf.get("kind") if leaf else None,
    )


def read_shaper(iface: str, *, tc_command: Sequence[str] = ("tc",)) -> ShaperState:
    """What tc reports on ``iface`` (qdiscs as JSON; classes as text, as iproute2 6.1
    prints HTB classes only as text even with ``-j``)."""
    qdiscs = _run(tc_command, ["-j", "qdisc", "show", "dev", iface], iface)
    classes = _run(tc_command, ["class", "show", "dev", iface], iface)
    return _parse_state(qdiscs, classes)


def apply_shaper(iface: str, cap_kbps: int, *, tc_command: Sequence[str] = ("tc",)) -> ShaperState:
    """Install (or update) the shaper on ``iface`` at ``cap_kbps`` and check it took.

    Blocking (runs tc); from asyncio use ``asyncio.to_thread``. Raises
    :class:`ShaperError` saying what to do.
    """
    current = read_shaper(iface, tc_command=tc_command)
    for args in shaper_commands(iface, cap_kbps, current):
        _run(tc_command, args, iface)
    state = read_shaper(iface, tc_command=tc_command)
    if state.cap_kbps() != cap_kbps:
        raise ShaperError(
            f"the shaper on {iface} did not take: tc reports {state}, "
            f"expected htb {HANDLE} default {CLASS_ID} capped at {cap_kbps} kbit/s"
        )
    return state


def remove_shaper(iface: str, *, tc_command: Sequence[str] = ("tc",)) -> bool:
    """Delete the shaper from ``iface``; False if it was not installed (nothing to do).

    A root qdisc that is not ours is left alone.
    """
    if not read_shaper(iface, tc_command=tc_command).ours:
        return False
    _run(tc_command, ["qdisc", "del", "dev", iface, "root"], iface)
    return True
