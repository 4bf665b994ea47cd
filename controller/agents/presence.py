"""Which agents are online: registration, heartbeats and the time-to-dead."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MISSED_HEARTBEATS_TO_DEAD = 2.5  # declared offline before the 3rd interval ends
# An agent declared offline whose heartbeats resume within this long was only late (a busy
# moment at a period boundary): it is online again as it was. Making it register again
# would have the orchestrator rejoin it, tearing down lesson media that was still flowing.
REVIVE_WITHIN_S = 60.0


@dataclass
class AgentPresence:
    """The live view of one agent in this controller instance."""

    classroom_id: str
    registered_at: float
    last_seen: float
    active_lesson_id: str | None = None


class Presence:
    """Tracks registered agents and declares silent ones offline."""

    def __init__(
        self, heartbeat_interval: float, on_offline: Callable[[str], None] | None = None
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self._agents: dict[str, AgentPresence] = {}
        self._lapsed: dict[str, AgentPresence] = {}  # declared offline, may be only late
        self._on_offline = on_offline
        self.declared_offline = 0  # agents declared offline by sweep(), over this process
        self.revived = 0

    @property
    def time_to_dead(self) -> float:
        """Seconds of silence after which an agent is offline."""
        return self.heartbeat_interval * MISSED_HEARTBEATS_TO_DEAD

    def registered(self, classroom_id: str, active_lesson_id: str | None) -> None:
        """An agent (re)registered."""
        now = time.monotonic()
        self._lapsed.pop(classroom_id, None)
        self._agents[classroom_id] = AgentPresence(classroom_id, now, now, active_lesson_id)

    def seen(self, classroom_id: str) -> bool:
        """A heartbeat arrived; False if the agent must register first."""
        now = time.monotonic()
        agent = self._agents.get(classroom_id)
        if agent is None:
            agent = self._lapsed.pop(classroom_id, None)
            if agent is None or now - agent.last_seen > REVIVE_WITHIN_S:
                return False
            self._agents[classroom_id] = agent
            self.revived += 1
            log.warning(
                "agent %s heard again after %.1f s: online, as it was",
                classroom_id,
                now - agent.last_seen,
            )
        agent.last_seen = now
        return True

    def is_online(self, classroom_id: str) -> bool:
        """Registered and heard from within the time-to-dead."""
        return classroom_id in self._agents

    @property
    def online(self) -> list[str]:
        """Every online classroom."""
        return sorted(self._agents)

    def sweep(self) -> list[str]:
        """Declare agents silent past the time-to-dead offline; returns them."""
        now = time.monotonic()
        dead = [c for c, a in self._agents.items() if now - a.last_seen > self.time_to_dead]
        for cid in dead:
            self._lapsed[cid] = self._agents.pop(cid)
            self.declared_offline += 1
            log.warning("agent %s silent for %.1f s: offline", cid, self.time_to_dead)
            if self._on_offline is not None:
                self._on_offline(cid)
        return dead
