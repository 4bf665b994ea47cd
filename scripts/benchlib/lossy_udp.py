"""An impairing UDP path between two WebRTC peers on loopback.

Each peer is told (through its SDP) that the other lives at one of the link's two
sockets, so every datagram, ICE checks included, crosses the link, and the link can
drop a chosen share in each direction: steady random loss, or a burst (``loss = 1.0``
for a while). Seeded, so a run's losses repeat.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
from dataclasses import dataclass, field

CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+) (\d+)( typ host.*)$", re.M)
Address = tuple[str, int]


@dataclass
class Direction:
    """One way across the link: the share dropped (set it at any time), and the counts."""

    loss: float = 0.0
    forwarded: int = 0
    dropped: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(5))

    def passes(self) -> bool:
        """Whether the next datagram gets through."""
        if self.loss > 0 and self.rng.random() < self.loss:
            self.dropped += 1
            return False
        self.forwarded += 1
        return True


class _Side(asyncio.DatagramProtocol):
    def __init__(self, link: LossyUdpLink, name: str) -> None:
        self.link, self.name = link, name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.link._forward(self.name, data, addr)


class LossyUdpLink:
    """Carries datagrams between peers ``a`` and ``b``; ``a_to_b``/``b_to_a`` drop some."""

    def __init__(self) -> None:
        self.a_to_b = Direction()
        self.b_to_a = Direction(rng=random.Random(6))
        self._peer: dict[str, Address | None] = {"a": None, "b": None}
        self._facing: dict[str, _Side] = {}  # the socket a peer sends to

    async def start(self) -> None:
        """Open the two sockets on 127.0.0.1."""
        loop = asyncio.get_running_loop()
        for name in ("a", "b"):
            _, side = await loop.create_datagram_endpoint(
                functools.partial(_Side, self, name), local_addr=("127.0.0.1", 0)
            )
            self._facing[name] = side

    def close(self) -> None:
        """Close both sockets."""
        for side in self._facing.values():
            if side.transport is not None:
                side.transport.close()

    def sdp_from(self, name: str, sdp: str) -> str:
        """Peer ``name``'s SDP as the other peer must see it: its host candidate is the link."""
        match = CANDIDATE.search(sdp)
        if match is None:
            raise ValueError(f"peer {name}'s SDP has no host candidate to route through the link")
        self._peer[name] = (match.group(2), int(match.group(3)))
        # the other peer sends to the socket facing it, which forwards to ``name``
        other = "b" if name == "a" else "a"
        transport = self._facing[other].transport
        assert transport is not None
        port = transport.get_extra_info("sockname")[1]
        return CANDIDATE.sub(lambda m: f"{m.group(1)}127.0.0.1 {port}{m.group(4)}", sdp)

    def _forward(self, arrived_from: str, data: bytes, addr: Address) -> None:
        self._peer[arrived_from] = addr  # a peer may send from another port than it named
        to = "b" if arrived_from == "a" else "a"
        target = self._peer[to]
        direction = self.a_to_b if arrived_from == "a" else self.b_to_a
        transport = self._facing[to].transport
        if target is None or transport is None or not direction.passes():
            return
        transport.sendto(data, target)
