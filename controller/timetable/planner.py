"""The scheduling rules, answered when a lesson is created, with reasons.

A ``Planner`` holds an in-memory index of what is booked — per classroom, per teacher and
per school, bucketed by day — so a whole term of 10,000 lessons is checked in well under
a second. Each problem names what clashes, with what, and what to do.

Rules: classroom and lead-teacher double bookings; receivers per kind (configurable);
a school's uplink against the concurrent lessons it would carry; and whether each
classroom's hardware can serve the kind (a two-way lesson needs a student camera at every
receiver). Lessons back to back in the same room are fine: intervals are half-open.

Network profiles: when a sending classroom has one, its video streams go at a rung of the
profile's ladder plus audio, and the lesson is *placed* on the best rung at which every
school uplink and every classroom cap holds; only when even the lowest rung does not fit
is it refused. Classrooms without a profile send their fixed estimates, as before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from controller.timetable.kinds import DEFAULT_RULES, KindRule
from protocols.network_profile import NetworkProfile, Rung

DAY = 86400
# Per-lesson estimates when a classroom has not reported its hardware profile yet.
LEAD_KBPS_ESTIMATE = 3_100  # teacher camera 2 Mbps + panel 1 Mbps + microphone
RECEIVER_KBPS_ESTIMATE = 700  # student camera 600 kbps + microphone


@dataclass(frozen=True)
class Room:
    """What the rules need to know about a classroom."""

    id: str
    school: str
    roles: frozenset[str] | None = None  # device roles from its profile; None: not known
    lead_kbps: int = LEAD_KBPS_ESTIMATE
    receiver_kbps: int = RECEIVER_KBPS_ESTIMATE
    profile: NetworkProfile | None = None  # its network profile (its own or its school's)
    lead_videos: int = 2  # video streams it sends when it leads: teacher camera and panel
    receiver_videos: int = 1  # video streams it sends when it receives: student camera

    def sends(self, leads: bool, rung: Rung | None) -> int:
        """kbps it sends in a lesson, leading (or as a research site) or receiving:
        at the rung of its profile nearest ``rung``, or its estimates without a profile."""
        if self.profile is None or rung is None:
            return self.lead_kbps if leads else self.receiver_kbps
        own = rung_at_most(self.profile, rung)
        videos = self.lead_videos if leads else self.receiver_videos
        return videos * own.kbps + self.profile.audio_kbps


def rung_at_most(profile: NetworkProfile, rung: Rung) -> Rung:
    """The profile's rung for a lesson placed on ``rung``: the one of the same name, else
    the best at or below its bitrate, else the profile's lowest."""
    for own in profile.ladder:
        if own.name == rung.name:
            return own
    for own in profile.ladder:
        if own.kbps <= rung.kbps:
            return own
    return profile.ladder[-1]


@dataclass(frozen=True)
class Candidate:
    """A lesson to check (``ref`` names it in messages: a lesson id or a CSV row)."""

    ref: str
    kind: str
    lead: str
    receivers: tuple[str, ...]
    start: datetime
    end: datetime
    teacher: str | None = None
    subject: str = ""
    title: str = ""
    rung: str | None = None  # the ladder rung it is placed on (set by ``Planner.place``)
    # Receiving rooms' assistant teachers (辅导教师): (room, teacher) pairs.
    assistants: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Problem:
    """One reason a lesson cannot be scheduled as asked."""

    code: str  # conflict | teacher_conflict | receivers | bandwidth | capability | invalid
    message: str


@dataclass(frozen=True)
class Placement:
    """The rules' answer for a candidate: its problems, or the rung it goes on and why.

    ``candidate`` is the checked one with ``rung`` filled in (book and store that one);
    ``rung`` is None when no sending classroom has a network profile."""

    problems: tuple[Problem, ...]
    candidate: Candidate
    rung: Rung | None = None
    reason: str = ""
    lowered: bool = False  # placed below the top rung of its ladder

    def document(self) -> dict[str, object] | None:
        """``{"rung", "kbps", "reason"}`` for answers; None without a profile or if refused."""
        if self.rung is None or self.problems:
            return None
        return {"rung": self.rung.name, "kbps": self.rung.kbps, "reason": self.reason}


@dataclass
class _Booking:
    start: float
    end: float
    ref: str
    kbps: int = 0


def _days(start: float, end: float) -> range:
    return range(int(start // DAY), int((end - 1e-6) // DAY) + 1)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


@dataclass
class Planner:
    """Checks candidates against what is booked, and books the ones that pass."""

    rooms: dict[str, Room]
    uplinks: dict[str, int] = field(default_factory=dict)  # school → kbps (0: unknown)
    rules: dict[str, KindRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def __post_init__(self) -> None:
        self._rooms: dict[tuple[str, int], list[_Booking]] = defaultdict(list)
        self._teachers: dict[tuple[str, int], list[_Booking]] = defaultdict(list)
        self._schools: dict[tuple[str, int], list[_Booking]] = defaultdict(list)

    # -- the rules ---------------------------------------------------------------------

    def check(self, c: Candidate) -> list[Problem]:
        """Every problem with ``c``; empty when it can be booked."""
        return list(self.place(c).problems)

    def place(self, c: Candidate) -> Placement:
        """Every problem with ``c``, or the ladder rung it fits on (see ``Placement``)."""
        problems = self._shape(c)
        if problems:
            return Placement(tuple(problems), c)
        start, end = c.start.timestamp(), c.end.timestamp()
        for room in (c.lead, *c.receivers):
            clash = self._clash(self._rooms, room, start, end)
            if clash is not None:
                problems.append(
                    Problem(
                        "conflict",
                        f"classroom {room!r} is already booked by {clash.ref} "
                        f"({_when(clash.start)}–{_when(clash.end)[11:]}); pick another "
                        "period or classroom",
                    )
                )
        if c.teacher:
            clash = self._clash(self._teachers, c.teacher, start, end)
            if clash is not None:
                problems.append(
                    Problem(
                        "teacher_conflict",
                        f"teacher {c.teacher!r} already leads {clash.ref} "
                        f"({_when(clash.start)}–{_when(clash.end)[11:]})",
                    )
                )
        problems += self._assistants(c, start, end)
        problems += self._capability(c)
        ladder = self._ladder(c)
        if ladder is None:
            problems += self._bandwidth(c, start, end)
            return Placement(tuple(problems), c)
        refused, rung, reason = self._fit(c, ladder, start, end)
        return Placement(
            tuple(problems + refused),
            replace(c, rung=rung.name),
            rung,
            reason,
            lowered=rung is not ladder[0],
        )

    def _shape(self, c: Candidate) -> list[Problem]:
        out: list[Problem] = []
        rule = self.rules.get(c.kind)
        if rule is None:
            return [
                Problem(
                    "invalid", f"unknown lesson kind {c.kind!r}; use one of {', '.join(self.rules)}"
                )
            ]
        if c.start.tzinfo is None or c.end.tzinfo is None:
            out.append(Problem("invalid", "start and end need a time zone"))
        elif c.end <= c.start:
            out.append(
                Problem(
                    "invalid", f"the lesson ends ({c.end:%H:%M}) before it starts ({c.start:%H:%M})"
                )
            )
        for room in (c.lead, *c.receivers):
            if room not in self.rooms:
                out.append(
                    Problem(
                        "invalid",
                        f"unknown classroom {room!r}; add it with "
                        "'classroom-controller classroom add'",
                    )
                )
        if c.lead in c.receivers:
            out.append(Problem("invalid", f"classroom {c.lead!r} cannot both lead and receive"))
        if len(set(c.receivers)) != len(c.receivers):
            out.append(Problem("invalid", "a receiving classroom is listed twice"))
        n = len(c.receivers)
        if not rule.min_receivers <= n <= rule.max_receivers:
            out.append(
                Problem(
                    "receivers",
                    f"a {c.kind} lesson takes {rule.min_receivers}–{rule.max_receivers} "
                    f"receiving classrooms; this one has {n}",
                )
            )
        return out

    def _capability(self, c: Candidate) -> list[Problem]:
        out = []
        rule = self.rules[c.kind]
        lead = self.rooms[c.lead]
        if lead.roles is not None and "teacher" not in lead.roles:
            out.append(
                Problem(
                    "capability",
                    f"classroom {c.lead!r} has no teacher camera in its hardware profile, "
                    "so it cannot lead a lesson",
                )
            )
        if rule.two_way and c.kind != "research":
            for rid in c.receivers:
                roles = self.rooms[rid].roles
                if roles is not None and "student" not in roles:
                    out.append(
                        Problem(
                            "capability",
                            f"classroom {rid!r} has no student camera in its hardware "
                            f"profile, which a two-way {c.kind} lesson needs",
                        )
                    )
        return out

    def _senders(self, c: Candidate) -> list[tuple[Room, bool]]:
        """Every classroom that sends in ``c``, and whether it sends what a lead sends."""
        out = [(self.rooms[c.lead], True)]
        if self.rules[c.kind].two_way:
            # every site of a research session sends what a lead sends
            out += [(self.rooms[rid], c.kind == "research") for rid in c.receivers]
        return out

    def _ladder(self, c: Candidate) -> tuple[Rung, ...] | None:
        """The ladder the lesson is placed on: that of its first sender with a profile."""
        for room, _ in self._senders(c):
            if room.profile is not None:
                return room.profile.ladder
        return None

    def sends(self, c: Candidate, rung: Rung | None = None) -> dict[str, int]:
        """kbps each sending classroom puts on its uplink in ``c``, at ``rung`` (default:
        the rung ``c`` is placed on; its ladder's top when it has none)."""
        if rung is None:
            rung = self._booked_rung(c)
        return {room.id: room.sends(leads, rung) for room, leads in self._senders(c)}

    def _booked_rung(self, c: Candidate) -> Rung | None:
        ladder = self._ladder(c)
        if ladder is None:
            return None
        return next((r for r in ladder if r.name == c.rung), ladder[0])

    def _usage(self, c: Candidate, rung: Rung | None = None) -> dict[str, int]:
        """Uplink kbps the candidate puts on each school."""
        use: dict[str, int] = defaultdict(int)
        for rid, kbps in self.sends(c, rung).items():
            use[self.rooms[rid].school] += kbps
        return use

    def _fit(
        self, c: Candidate, ladder: tuple[Rung, ...], start: float, end: float
    ) -> tuple[list[Problem], Rung, str]:
        """The best rung at which every cap and uplink holds, with the reason it is not the
        top one; bandwidth problems at the lowest rung when none does."""
        peaks: dict[str, tuple[int, set[str]]] = {}
        first: list[str] = []
        for rung in ladder:
            over = self._over(c, rung, start, end, peaks)
            if not over:
                if rung is ladder[0]:
                    return [], rung, f"top rung {rung.name} ({rung.kbps} kbps) fits"
                return (
                    [],
                    rung,
                    f"placed on rung {rung.name} ({rung.kbps} kbps): at {ladder[0].name} "
                    + "; ".join(first),
                )
            first = first or over
        low = ladder[-1]
        return (
            [
                Problem(
                    "bandwidth",
                    f"{what}, even at the lowest rung {low.name} ({low.kbps} kbps); move a "
                    "lesson, raise the uplink or the classroom cap, or add a lower rung",
                )
                for what in over
            ],
            low,
            "",
        )

    def _over(
        self,
        c: Candidate,
        rung: Rung,
        start: float,
        end: float,
        peaks: dict[str, tuple[int, set[str]]],
    ) -> list[str]:
        """What would be over its cap or uplink with ``c`` on ``rung``."""
        out = []
        sends = self.sends(c, rung)
        for rid, kbps in sends.items():
            profile = self.rooms[rid].profile
            if profile is not None and kbps > profile.classroom_cap_kbps:
                out.append(
                    f"classroom {rid!r} would send {kbps} kbps over its classroom cap of "
                    f"{profile.classroom_cap_kbps} kbps (profile {profile.name!r})"
                )
        use: dict[str, int] = defaultdict(int)
        for rid, kbps in sends.items():
            use[self.rooms[rid].school] += kbps
        for school, kbps in use.items():
            uplink = self.uplinks.get(school, 0)
            if uplink <= 0 or kbps == 0:
                continue
            if school not in peaks:
                peaks[school] = self._peak(school, start, end)
            peak, refs = peaks[school]
            if peak + kbps > uplink:
                others = f" with {', '.join(sorted(refs)[:5])}" if refs else ""
                out.append(
                    f"the school {school!r} would send {peak + kbps} kbps over its "
                    f"{uplink} kbps uplink{others}"
                )
        return out

    def _bandwidth(self, c: Candidate, start: float, end: float) -> list[Problem]:
        out = []
        for school, kbps in self._usage(c).items():
            uplink = self.uplinks.get(school, 0)
            if uplink <= 0 or kbps == 0:
                continue
            peak, refs = self._peak(school, start, end)
            if peak + kbps > uplink:
                others = f" with {', '.join(sorted(refs)[:5])}" if refs else ""
                out.append(
                    Problem(
                        "bandwidth",
                        f"school {school!r} would send {peak + kbps} kbps{others}, over its "
                        f"{uplink} kbps uplink; move a lesson or lower the video rung",
                    )
                )
        return out

    def _peak(self, school: str, start: float, end: float) -> tuple[int, set[str]]:
        """Highest concurrent kbps already booked on the school within [start, end)."""
        seen: dict[str, _Booking] = {}
        for day in _days(start, end):
            for b in self._schools.get((school, day), ()):
                if b.start < end and b.end > start:
                    seen[b.ref] = b
        events = sorted(
            [(max(b.start, start), b.kbps) for b in seen.values()]
            + [(min(b.end, end), -b.kbps) for b in seen.values()]
        )
        peak = now = 0
        for _, delta in events:
            now += delta
            peak = max(peak, now)
        return peak, set(seen)

    @staticmethod
    def _clash(
        index: dict[tuple[str, int], list[_Booking]], key: str, start: float, end: float
    ) -> _Booking | None:
        for day in _days(start, end):
            for b in index.get((key, day), ()):
                if b.start < end and b.end > start:
                    return b
        return None

    def _assistants(self, c: Candidate, start: float, end: float) -> list[Problem]:
        """Each receiving room's assistant teacher: a room of the lesson, not the lead
        teacher, one room each, and free (booked like the lead teacher)."""
        problems = []
        seen: set[str] = set()
        for room, teacher in c.assistants:
            if room not in c.receivers:
                problems.append(
                    Problem(
                        "invalid",
                        f"assistant teacher {teacher!r} is set for {room!r}, which is not a "
                        "receiving room of this lesson",
                    )
                )
                continue
            if teacher == c.teacher or teacher in seen:
                problems.append(
                    Problem(
                        "teacher_conflict",
                        f"teacher {teacher!r} cannot assist in {room!r}: they already "
                        f"{'lead' if teacher == c.teacher else 'assist in another room of'} "
                        "this lesson",
                    )
                )
                continue
            seen.add(teacher)
            clash = self._clash(self._teachers, teacher, start, end)
            if clash is not None:
                problems.append(
                    Problem(
                        "teacher_conflict",
                        f"assistant teacher {teacher!r} (in {room!r}) is already booked by "
                        f"{clash.ref} ({_when(clash.start)}–{_when(clash.end)[11:]})",
                    )
                )
        return problems

    # -- booking -----------------------------------------------------------------------

    def add(self, c: Candidate) -> None:
        """Book ``c`` (call after ``check`` found nothing, or to load existing lessons)."""
        start, end = c.start.timestamp(), c.end.timestamp()
        for day in _days(start, end):
            for room in (c.lead, *c.receivers):
                self._rooms[(room, day)].append(_Booking(start, end, c.ref))
            for teacher in (c.teacher, *(t for _, t in c.assistants)):
                if teacher:
                    self._teachers[(teacher, day)].append(_Booking(start, end, c.ref))
            if c.kind in self.rules and all(r in self.rooms for r in (c.lead, *c.receivers)):
                for school, kbps in self._usage(c).items():
                    self._schools[(school, day)].append(_Booking(start, end, c.ref, kbps))

    def remove(self, ref: str) -> None:
        """Unbook a lesson (moved or cancelled)."""
        for index in (self._rooms, self._teachers, self._schools):
            for key, bookings in index.items():
                index[key] = [b for b in bookings if b.ref != ref]
