"""Network profiles on the controller: stored by name, assigned to a school or a classroom,
and resolved for a classroom (its own profile, else its school's).

A profile is validated by ``parse_network_profile`` whenever it is stored; a bad one is
refused with ``InvalidRequest`` carrying that validator's message (source, field, value
and what would be valid).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.agents.registry import get_classroom
from controller.common.errors import InvalidRequest, NotFound
from controller.db.models import Classroom, NetworkProfileRecord, School
from controller.db.session import as_utc, utcnow
from protocols.network_profile import (
    NetworkProfile,
    NetworkProfileError,
    load_network_profile_toml,
    parse_network_profile,
)

ADD_HINT = "add it with 'classroom-controller network-profile add FILE.toml'"


@dataclass(frozen=True)
class StoredProfile:
    """A stored profile with when it changed and where it is assigned."""

    profile: NetworkProfile
    updated_at: datetime
    schools: list[str] = field(default_factory=list)
    classrooms: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """JSON view: the profile, its assignments and when it changed."""
        return {
            "name": self.profile.name,
            "profile": profile_document(self.profile),
            "updated_at": as_utc(self.updated_at).isoformat(),
            "schools": self.schools,
            "classrooms": self.classrooms,
        }


def profile_document(profile: NetworkProfile) -> dict[str, Any]:
    """The profile as the JSON document agents and the API receive."""
    return profile.model_dump(mode="json")


def parse_profile_text(text: str, source: str) -> NetworkProfile:
    """A profile from TOML (or JSON when ``source`` ends in ``.json``);
    ``InvalidRequest`` with the validator's message when it is bad."""
    try:
        if source.lower().endswith(".json"):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as err:
                raise NetworkProfileError(
                    f"network profile {source}: not valid JSON: {err}"
                ) from None
            if not isinstance(doc, dict):
                raise NetworkProfileError(f"network profile {source}: must be a JSON object")
            return parse_network_profile(doc, source)
        return load_network_profile_toml(text, source)
    except NetworkProfileError as err:
        raise InvalidRequest(str(err)) from None


def put_profile(db: Session, profile: NetworkProfile | dict[str, Any], source: str) -> bool:
    """Store (insert or replace) a profile; returns True when it is new.

    A dict is validated first: ``InvalidRequest`` names what is wrong."""
    if not isinstance(profile, NetworkProfile):
        try:
            profile = parse_network_profile(profile, source)
        except NetworkProfileError as err:
            raise InvalidRequest(str(err)) from None
    row = db.get(NetworkProfileRecord, profile.name)
    created = row is None
    if row is None:
        row = NetworkProfileRecord(name=profile.name)
        db.add(row)
    row.document = profile_document(profile)
    row.updated_at = utcnow()
    db.commit()
    return created


def _parse_stored(row: NetworkProfileRecord) -> NetworkProfile:
    try:
        return parse_network_profile(dict(row.document), f"{row.name!r} (stored)")
    except NetworkProfileError as err:
        raise InvalidRequest(
            f"{err}; the stored profile no longer validates: add it again, fixed"
        ) from None


def stored_profiles(db: Session) -> dict[str, NetworkProfile]:
    """Every stored profile by name (one query)."""
    return {row.name: _parse_stored(row) for row in db.scalars(select(NetworkProfileRecord)).all()}


def get_profile(db: Session, name: str) -> NetworkProfile:
    """A stored profile; ``NotFound`` names the known ones."""
    row = db.get(NetworkProfileRecord, name)
    if row is None:
        known = db.scalars(select(NetworkProfileRecord.name).order_by(NetworkProfileRecord.name))
        raise NotFound(
            f"network profile {name!r} does not exist (known: "
            f"{', '.join(known.all()) or 'none'}); {ADD_HINT}"
        )
    return _parse_stored(row)


def list_profiles(db: Session) -> list[StoredProfile]:
    """Every stored profile with the schools and classrooms it is assigned to."""
    schools = _assigned(db.execute(select(School.network_profile, School.id)).all())
    rooms = _assigned(db.execute(select(Classroom.network_profile, Classroom.id)).all())
    rows = db.scalars(select(NetworkProfileRecord).order_by(NetworkProfileRecord.name)).all()
    return [
        StoredProfile(
            _parse_stored(row),
            row.updated_at,
            sorted(schools.get(row.name, [])),
            sorted(rooms.get(row.name, [])),
        )
        for row in rows
    ]


def assigned_to(db: Session, name: str) -> tuple[list[str], list[str]]:
    """The schools and the classrooms profile ``name`` is assigned to."""
    schools = db.scalars(select(School.id).where(School.network_profile == name))
    rooms = db.scalars(select(Classroom.id).where(Classroom.network_profile == name))
    return sorted(schools.all()), sorted(rooms.all())


def _assigned(pairs: Iterable[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, owner in pairs:
        if name:
            out.setdefault(name, []).append(owner)
    return out


def assign_profile(
    db: Session, name: str | None, school: str | None = None, classroom: str | None = None
) -> str:
    """Assign profile ``name`` (None: remove the assignment) to exactly one school or
    classroom; returns a sentence saying what was done.

    A school known only from its classrooms' ``school`` field gets a school row (uplink
    unknown) to hold the assignment."""
    if (school is None) == (classroom is None):
        raise InvalidRequest("give exactly one of a school or a classroom to assign the profile to")
    if name is not None:
        get_profile(db, name)  # NotFound names the known profiles
    if classroom is not None:
        room = get_classroom(db, classroom)
        room.network_profile = name
        target = f"classroom {classroom!r}"
    else:
        assert school is not None
        row = db.get(School, school)
        if row is None:
            if db.scalar(select(Classroom.id).where(Classroom.school == school)) is None:
                known = sorted(
                    set(db.scalars(select(School.id)).all())
                    | {s for s in db.scalars(select(Classroom.school)).all() if s}
                )
                raise NotFound(
                    f"school {school!r} is neither in the timetable set-up nor the school of "
                    f"any classroom (known: {', '.join(known) or 'none'})"
                )
            row = School(id=school, name=school, uplink_kbps=0)
            db.add(row)
        row.network_profile = name
        target = f"school {school!r}"
    db.commit()
    if name is None:
        return f"{target} has no network profile of its own now"
    return f"network profile {name!r} assigned to {target}"


def resolve(
    classroom_profile: str | None,
    school_profile: str | None,
    profiles: dict[str, NetworkProfile],
) -> NetworkProfile | None:
    """The classroom's own profile, else its school's; a name no longer stored counts as
    none."""
    for name in (classroom_profile, school_profile):
        if name and name in profiles:
            return profiles[name]
    return None


def effective_profile(db: Session, classroom_id: str) -> NetworkProfile | None:
    """The profile a classroom works under: its own, else its school's, else None."""
    room = get_classroom(db, classroom_id)
    school = db.get(School, room.school) if room.school else None
    names = [n for n in (room.network_profile, school.network_profile if school else None) if n]
    for name in names:
        row = db.get(NetworkProfileRecord, name)
        if row is not None:
            return _parse_stored(row)
    return None
