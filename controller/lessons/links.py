"""What the orchestrator reaches beyond itself: the agents (commands), who is online, and
the other controllers of a cluster. Small interfaces, so tests can stand in for them."""

from __future__ import annotations

from typing import Protocol

from protocols.envelope import Envelope
from protocols.messages import Body, FloorState, SdpOffer


class AgentLink(Protocol):
    """How commands reach the agents (``controller.agents.hub.AgentHub``, or on several
    controllers ``controller.cluster.node.ClusterHub``)."""

    async def send(self, classroom_id: str, body: Body, correlation_id: str | None = None) -> str:
        """Send one-way."""
        ...

    async def request(self, classroom_id: str, body: Body, timeout: float) -> Envelope:
        """Send and await the reply."""
        ...


class OnlineView(Protocol):
    """Which agents are online (``controller.agents.presence.Presence``, or on several
    controllers ``controller.cluster.online.ClusterOnline``)."""

    def is_online(self, classroom_id: str) -> bool:
        """Whether the classroom's agent is online."""
        ...

    @property
    def online(self) -> list[str]:
        """Every online classroom."""
        ...


class Elsewhere(Protocol):
    """The other controllers, as the orchestrator tells them what happened here."""

    def agent_registered(self, classroom_id: str) -> None:
        """An agent registered with this controller."""

    async def agent_routable(self, classroom_id: str) -> None:
        """Return once commands from the other controllers reach that agent here."""

    async def offer_to_leader(self, classroom_id: str, offer: SdpOffer) -> Body | None:
        """Pass an agent's media offer to the leader that relays its lesson (None: this
        controller leads)."""

    def floor_changed(self, state: FloorState) -> None:
        """A lesson's floor changed here, and the lesson runs on another controller."""
