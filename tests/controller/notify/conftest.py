"""Shared set-up of the notification tests: a migrated database with two schools'
classrooms, a clock the tests move, and real peers (group robots, a mail server)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
from notify_fixtures import ROOMS
from peers.robot_webhook import RobotReceiver
from peers.smtp_inbox import SmtpInbox
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Classroom
from controller.db.session import make_engine, migrate, sessions


@pytest.fixture
def db(tmp_path: pathlib.Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'n.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    with factory() as s:
        for cid, (school, name) in ROOMS.items():
            s.add(Classroom(id=cid, name=name, school=school, inventory=[], health={}))
        s.commit()
    return factory


@pytest.fixture
async def robot() -> AsyncIterator[RobotReceiver]:
    async with RobotReceiver() as peer:
        yield peer


@pytest.fixture
def inbox() -> Iterator[SmtpInbox]:
    with SmtpInbox() as peer:
        yield peer
