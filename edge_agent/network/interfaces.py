"""Is this PC plugged in where its network profile says, and which address streams?

A recording classroom lives on its own VLAN and subnet (the network profile's ``vlan_id``
and ``subnet``). Before a lesson the agent looks at its interfaces and refuses to stream
from anywhere else, with a message a technician can act on.

How the VLAN is seen from the PC:

* a tagged VLAN interface has its id in the kernel's table ``/proc/net/vlan/config``
  (present once the ``8021q`` module is loaded), and usually in its name too:
  ``eth0.120``, ``enp3s0.120``, ``eth0.0120`` or ``vlan120``;
* on an untagged (access) switch port the PC sees a plain ``eth0``; the VLAN is the
  switch's business and only the subnet can be checked. Such a placement passes (the
  message says only the subnet was checked) unless ``require_vlan_tag`` is set.

The interface table is read with psutil; tests pass their own list of :class:`Iface`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

from edge_agent.errors import AgentError
from protocols.network_profile import NetworkProfile

VLAN_CONFIG: Final = Path("/proc/net/vlan/config")

# eth0.120, enp3s0.0120, bond0.120 / vlan120, vlan0120
_DOTTED: Final = re.compile(r"^(?P<parent>.+)\.(?P<vid>\d{1,4})$")
_VLAN_PREFIX: Final = re.compile(r"^vlan(?P<vid>\d{1,4})$")

IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class PlacementRefused(AgentError):
    """The PC is not on the VLAN/subnet its network profile names; do not stream."""


@dataclass(frozen=True)
class Iface:
    """One network interface: its name, its addresses as CIDR strings, and whether it is up.

    ``addresses`` are written ``"10.20.120.5/24"`` (a dotted netmask works too).
    """

    name: str
    addresses: Sequence[str]
    up: bool


@dataclass(frozen=True)
class Placement:
    """The outcome of :func:`check_placement`.

    ``interface``/``address`` are the chosen interface and its bare address (no prefix)
    when ``ok``; on refusal they name the closest match, if any. ``vlan_found`` is the VLAN
    id seen on that interface (None: untagged or not found).
    """

    ok: bool
    interface: str | None
    address: str | None
    vlan_found: int | None
    message: str


def parse_vlan_config(text: str) -> dict[str, int]:
    """VLAN ids by interface name from the text of ``/proc/net/vlan/config``.

    The file looks like::

        VLAN Dev name    | VLAN ID
        Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD
        eth0.120       | 120  | eth0

    Lines that are not ``name | id | parent`` rows (the two header lines) are skipped.
    """
    table: dict[str, int] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 3 or not fields[0] or not fields[1].isdigit():
            continue
        table[fields[0]] = int(fields[1])
    return table


def read_vlan_config(path: Path = VLAN_CONFIG) -> dict[str, int]:
    """The kernel's VLAN table; empty when the file is absent (8021q not loaded)."""
    try:
        return parse_vlan_config(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return {}


def vlan_of(name: str, vlan_table: Mapping[str, int]) -> int | None:
    """The VLAN id of interface ``name``: from the kernel table, else from its name."""
    if name in vlan_table:
        return vlan_table[name]
    match = _DOTTED.match(name) or _VLAN_PREFIX.match(name)
    if match is None:
        return None
    vid = int(match["vid"])
    return vid if 1 <= vid <= 4094 else None


def _prefix_len(netmask: str) -> int:
    return bin(int(ipaddress.ip_address(netmask))).count("1")


def system_interfaces() -> list[Iface]:
    """This PC's interfaces from psutil (IPv4 and IPv6 addresses, up or down)."""
    stats = psutil.net_if_stats()
    table: list[Iface] = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        cidrs = []
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6) or not a.netmask:
                continue
            address = a.address.split("%", 1)[0]  # drop an IPv6 scope (fe80::1%eth0)
            cidrs.append(f"{address}/{_prefix_len(a.netmask)}")
        up = bool(stats[name].isup) if name in stats else False
        table.append(Iface(name=name, addresses=tuple(cidrs), up=up))
    return table


def _parse(addresses: Sequence[str]) -> list[IpInterface]:
    out: list[IpInterface] = []
    for text in addresses:
        try:
            out.append(ipaddress.ip_interface(text))
        except ValueError:
            continue
    return out


def _describe(ifaces: Sequence[Iface], vlans: Mapping[str, int], show_loopback: bool) -> str:
    """``eth0 192.168.1.23/24 (no VLAN), eth0.130 10.20.120.5/24 (VLAN 130)``."""
    parts = []
    for iface in ifaces:
        if not iface.up:
            continue
        vid = vlans.get(iface.name)
        tag = f"VLAN {vid}" if vid is not None else "no VLAN"
        for ip in _parse(iface.addresses):
            if ip.is_link_local or (ip.is_loopback and not show_loopback):
                continue
            parts.append(f"{iface.name} {ip.with_prefixlen} ({tag})")
    return ", ".join(parts)


def _expected(profile: NetworkProfile) -> str:
    want = []
    if profile.vlan_id is not None:
        want.append(f"VLAN {profile.vlan_id}")
    if profile.subnet is not None:
        want.append(f"subnet {profile.subnet}")
    return f"the profile {profile.name!r} expects {', '.join(want)}"


def check_placement(
    profile: NetworkProfile,
    ifaces: Sequence[Iface] | None = None,
    *,
    vlan_config: Path = VLAN_CONFIG,
    require_vlan_tag: bool = False,
) -> Placement:
    """Check that an interface that is up sits on the profile's VLAN and subnet.

    ``ifaces`` defaults to :func:`system_interfaces`; ``vlan_config`` is the kernel's VLAN
    table (absent is fine). With ``require_vlan_tag`` an untagged interface in the right
    subnet is refused rather than trusted. Never raises for a bad placement: the
    :class:`Placement` says why, and :func:`media_addresses` refuses it.
    """
    if profile.vlan_id is None and profile.subnet is None:
        return Placement(
            ok=True,
            interface=None,
            address=None,
            vlan_found=None,
            message=(
                f"profile {profile.name!r} names no VLAN and no subnet; not checking where "
                "this PC is plugged in, ICE may use any address"
            ),
        )
    table = list(system_interfaces() if ifaces is None else ifaces)
    kernel_vlans = read_vlan_config(vlan_config)
    vlans = {i.name: v for i in table if (v := vlan_of(i.name, kernel_vlans)) is not None}
    subnet = ipaddress.ip_network(profile.subnet) if profile.subnet is not None else None
    expected = _expected(profile)

    up = [i for i in table if i.up]
    if not any(_parse(i.addresses) for i in up):
        down = ", ".join(i.name for i in table if not i.up) or "none"
        return Placement(
            ok=False,
            interface=None,
            address=None,
            vlan_found=None,
            message=(
                f"refusing to stream: no network interface is up with an address "
                f"(down: {down}); {expected}; check the cable and the link with 'ip addr'"
            ),
        )

    # (interface, address, VLAN seen) of every up address that could be the right one.
    candidates: list[tuple[Iface, IpInterface, int | None]] = []
    for iface in up:
        for ip in _parse(iface.addresses):
            if subnet is not None:
                if ip.version == subnet.version and ip.ip in subnet:
                    candidates.append((iface, ip, vlans.get(iface.name)))
            elif vlans.get(iface.name) == profile.vlan_id and not ip.is_link_local:
                candidates.append((iface, ip, profile.vlan_id))

    candidates.sort(key=lambda c: c[1].version)  # IPv4 first
    tagged = [c for c in candidates if c[2] == profile.vlan_id]
    untagged = [c for c in candidates if c[2] is None]
    if profile.vlan_id is None or tagged:
        if candidates:
            iface, ip, vid = (tagged or candidates)[0]
            vlan_text = f"VLAN {vid}, " if vid is not None else ""
            return Placement(
                ok=True,
                interface=iface.name,
                address=str(ip.ip),
                vlan_found=vid,
                message=(
                    f"streaming from {iface.name} {ip.with_prefixlen} ({vlan_text}"
                    f"as profile {profile.name!r} expects)"
                ),
            )
    elif untagged and not require_vlan_tag:
        iface, ip, _ = untagged[0]
        return Placement(
            ok=True,
            interface=iface.name,
            address=str(ip.ip),
            vlan_found=None,
            message=(
                f"streaming from {iface.name} {ip.with_prefixlen} in subnet {profile.subnet}; "
                f"VLAN {profile.vlan_id} is not visible on this PC (an untagged switch port), "
                "so only the subnet was checked"
            ),
        )

    seen = _describe(table, vlans, show_loopback=bool(subnet and subnet.is_loopback))
    if candidates:  # the right subnet, but a wrong or missing VLAN tag
        iface, ip, vid = candidates[0]
        on = f"on VLAN {vid}" if vid is not None else "untagged (no VLAN visible on this PC)"
        return Placement(
            ok=False,
            interface=iface.name,
            address=str(ip.ip),
            vlan_found=vid,
            message=(
                f"refusing to stream: {iface.name} has {ip.with_prefixlen}, in the subnet "
                f"{profile.subnet}, but it is {on}, not VLAN {profile.vlan_id}; "
                f"{expected}; fix the switch port's VLAN or the profile"
            ),
        )
    hint = ""
    if profile.vlan_id is not None and profile.subnet is None:
        hint = (
            "; if the switch port carries the VLAN untagged, add its subnet to the profile "
            "so the agent can check it"
        )
    return Placement(
        ok=False,
        interface=None,
        address=None,
        vlan_found=None,
        message=(
            f"refusing to stream: this PC's addresses are {seen or 'none'}; {expected}; "
            f"plug the PC into the recording-classroom port or fix the profile{hint}"
        ),
    )


def media_addresses(placement: Placement) -> list[str]:
    """The addresses ICE should bind to, for ``aiortc_seam.pin_host_addresses``.

    Empty when the profile names no VLAN or subnet: then do not pin, let ICE choose.
    Raises :class:`PlacementRefused` (with the placement's message) for a refused placement.
    """
    if not placement.ok:
        raise PlacementRefused(placement.message)
    return [placement.address] if placement.address is not None else []
