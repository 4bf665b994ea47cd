"""The peer-connection configuration shared by agents and the relay."""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer


def peer_configuration(ice_servers: list[RTCIceServer] | None = None) -> RTCConfiguration:
    """One bundled transport for every track, and no public STUN on school networks.

    aiortc adds a public STUN server when none is given, and with its default "balanced"
    policy a second track of the same kind gets a transport of its own; both are wrong
    for a lesson that carries several cameras and microphones over one closed network.
    """
    return RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
