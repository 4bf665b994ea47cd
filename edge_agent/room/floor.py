"""The floor of the lesson in this room (课堂互动), pure: which receiving room the lead has
called on, the mixer's gain for each room, and the lead's floor keys as requests.

The controller's ``FloorState`` is the truth; states are applied in ``seq`` order. When the
controller cannot be reached, ``local_change`` turns a key press into a state the room can
apply on its own.
"""

from __future__ import annotations

import math

from edge_agent.profile import FloorKeys
from protocols.messages import FloorRequest, FloorState, JoinLesson

FULL_DB = 0.0


class FloorControl:
    """Holds one lesson's floor for the classroom ``classroom_id``."""

    def __init__(self, classroom_id: str) -> None:
        self.classroom_id = classroom_id
        self.lesson_id: str | None = None
        self.lead: str | None = None
        # Every room this classroom hears, in join.subscribe's order; the lead's excluded
        # from ``receiving`` (it is never ducked or called on).
        self.sources: list[str] = []
        self.receiving: list[str] = []
        self.state: FloorState | None = None

    @property
    def is_lead(self) -> bool:
        """Whether this classroom leads the lesson (only the lead's keys give the floor)."""
        return self.lead is not None and self.lead == self.classroom_id

    def reset(self, join: JoinLesson | None) -> None:
        """Take a new lesson's rooms and floor from its join; None: no lesson."""
        self.state = None
        if join is None:
            self.lesson_id = self.lead = None
            self.sources, self.receiving = [], []
            return
        self.lesson_id = join.lesson_id
        self.sources = list(dict.fromkeys(s.source_classroom for s in join.subscribe))
        # The lead hears the receiving rooms; a receiver's first source is the lead (the
        # controller lists the lead first, also in a research session).
        if join.role == "lead":
            self.lead = self.classroom_id
        else:
            self.lead = self.sources[0] if self.sources else None
        self.receiving = [c for c in self.sources if c not in (self.lead, self.classroom_id)]
        if join.floor is not None:
            self.apply(join.floor)

    def apply(self, state: FloorState) -> bool:
        """Apply a newer state of this lesson; False for another lesson or seq not higher."""
        if state.lesson_id != self.lesson_id:
            return False
        if self.state is not None and state.seq <= self.state.seq:
            return False
        changed = self.state is None or (
            (state.speaking, state.muted, state.duck_db)
            != (self.state.speaking, self.state.muted, self.state.duck_db)
        )
        self.state = state
        return changed

    @property
    def seq(self) -> int:
        """The seq of the state applied (0 before any)."""
        return self.state.seq if self.state is not None else 0

    @property
    def speaking(self) -> str | None:
        """The receiving room called on, or None."""
        return self.state.speaking if self.state is not None else None

    @property
    def muted(self) -> list[str]:
        """The receiving rooms not heard at all."""
        return list(self.state.muted) if self.state is not None else []

    def gains_db(self, duck_db: float | None = None) -> dict[str, float]:
        """The mixer's gain for every room heard: the lead and the room called on 0 dB,
        the other receiving rooms ducked while someone has the floor, muted -inf.

        ``duck_db`` is the room's own setting (its speakers' ``duck_db``); without it the
        state's value is used."""
        speaking, muted = self.speaking, set(self.muted)
        duck = self.state.duck_db if self.state is not None else FULL_DB
        if duck_db is not None:
            duck = duck_db
        gains = {}
        for room in self.sources:
            if room not in self.receiving:
                gains[room] = FULL_DB  # the lead is always heard
            elif room in muted:
                gains[room] = -math.inf
            elif speaking is None or room == speaking:
                gains[room] = FULL_DB
            else:
                gains[room] = duck
        return gains

    def on_key(self, name: str, keys: FloorKeys) -> FloorRequest | None:
        """The floor request a key press makes, in the lead room; None when it makes none
        (a receiving room, no lesson, a key not mapped, or nothing would change)."""
        if not self.is_lead or self.lesson_id is None or not self.receiving:
            return None
        pressed = name.strip().lower()
        if not pressed:
            return None
        speaking, muted = self.speaking, self.muted
        rooms = self.receiving
        if pressed == keys.next.lower():
            at = rooms.index(speaking) if speaking in rooms else -1
            speaking = rooms[(at + 1) % len(rooms)]
        elif pressed == keys.previous.lower():
            at = rooms.index(speaking) if speaking in rooms else len(rooms)
            speaking = rooms[(at - 1) % len(rooms)]
        elif pressed == keys.release.lower():
            if speaking is None:
                return None
            speaking = None
        elif pressed == keys.mute.lower():
            if speaking is None:
                return None
            muted = [m for m in muted if m != speaking] if speaking in muted else [*muted, speaking]
        else:
            return None
        return FloorRequest(lesson_id=self.lesson_id, speaking=speaking, muted=muted)

    def local_change(self, request: FloorRequest) -> FloorState:
        """The state ``request`` makes when the controller cannot be reached: seq + 1, by
        ``keys:<this classroom>``. Not applied: pass it to ``apply``."""
        if request.lesson_id != self.lesson_id:
            raise ValueError(
                f"floor request for lesson {request.lesson_id!r}, but this room is in "
                f"{self.lesson_id!r}; reset() with the lesson's join first"
            )
        base = self.state or FloorState(lesson_id=request.lesson_id, seq=0)
        return FloorState(
            lesson_id=request.lesson_id,
            seq=base.seq + 1,
            speaking=request.speaking,
            muted=list(request.muted),
            duck_db=base.duck_db,
            by=f"keys:{self.classroom_id}",
        )
