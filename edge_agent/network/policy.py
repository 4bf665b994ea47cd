"""The network profile as the agent enforces it, from the controller or a local file.

Before a lesson's media goes to the relay the agent checks where it is plugged in; a
wrong VLAN or subnet means no streaming (the lesson is still recorded locally) and an
alert the console shows. ICE is bound to the profile's interface address, media sockets
are marked with the profile's DSCP code points, and every video encoder is kept at or
below the profile's top rung.
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Callable, Sequence

from edge_agent.network.interfaces import Iface, Placement, check_placement, media_addresses
from edge_agent.network.shaper import ShaperError, apply_shaper
from protocols.media import aiortc_seam
from protocols.network_profile import NetworkProfile, NetworkProfileError, parse_network_profile

log = logging.getLogger(__name__)
CACHE_NAME = "network-profile.json"  # the controller's profile, for 'net check' and restarts


def cached_profile(state_dir: pathlib.Path) -> NetworkProfile | None:
    """The last network profile the controller sent (None if none or unreadable)."""
    try:
        doc = json.loads((state_dir / CACHE_NAME).read_text())
        return parse_network_profile(doc, str(state_dir / CACHE_NAME))
    except (OSError, ValueError):
        return None


class NetworkPolicy:
    """What the agent does about its network profile (None: no profile, nothing enforced)."""

    def __init__(
        self,
        local: NetworkProfile | None = None,
        interfaces: Callable[[], Sequence[Iface]] | None = None,
    ) -> None:
        self._local = local
        self._from_controller: NetworkProfile | None = None
        self._interfaces = interfaces
        self.placement: Placement | None = None
        self.shaped: str | None = None

    @property
    def profile(self) -> NetworkProfile | None:
        """The controller's profile for this classroom, else the local one."""
        return self._from_controller or self._local

    def update_from_controller(
        self, doc: dict[str, object] | None, state_dir: pathlib.Path | None = None
    ) -> str | None:
        """Take the profile the controller sent; returns an error message if it is bad."""
        cache = None if state_dir is None else state_dir / CACHE_NAME
        if doc is None:
            self._from_controller = None
            if cache is not None:
                cache.unlink(missing_ok=True)
            return None
        try:
            self._from_controller = parse_network_profile(dict(doc), "from the controller")
        except NetworkProfileError as err:
            return f"{err}; keeping {'the local profile' if self._local else 'no profile'}"
        if cache is not None:
            cache.write_text(json.dumps(doc))
        return None

    def check(self) -> Placement | None:
        """Check placement now; pins ICE to the chosen address when the profile asks."""
        profile = self.profile
        if profile is None:
            self.placement = None
            return None
        ifaces = None if self._interfaces is None else list(self._interfaces())
        placement = check_placement(profile, ifaces)
        self.placement = placement
        if placement.ok:
            addresses = media_addresses(placement)
            if addresses:
                aiortc_seam.pin_host_addresses(addresses)
            if profile.shaper and placement.interface and self.shaped != placement.interface:
                try:
                    apply_shaper(placement.interface, profile.classroom_cap_kbps)
                    self.shaped = placement.interface
                except ShaperError as err:
                    log.warning("kernel shaper not installed: %s", err)
        return placement

    def video_cap_bps(self, rung: str | None = None) -> int | None:
        """The most any one video encoder may send, bits/s: the lesson's rung if the
        controller placed it on one this profile knows, else the top rung."""
        profile = self.profile
        if profile is None:
            return None
        chosen = next((r for r in profile.ladder if r.name == rung), profile.ladder[0])
        return chosen.kbps * 1000
