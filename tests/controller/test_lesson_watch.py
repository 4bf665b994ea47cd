"""Two lesson watches on one sessionmaker (the orchestrator's and the cluster node's): each
hears every lesson change, and each closes on its own, in any order, twice if need be."""

from __future__ import annotations

import pathlib
from datetime import timedelta

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.db.session import make_engine, migrate, sessions, utcnow
from controller.lessons.scheduling import schedule_lesson
from controller.lessons.watch import LessonWatch


def test_two_watches_hear_changes_and_close_independently(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    factory = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    with factory() as s:
        for cid in ("lead", "recv"):
            add_classroom(s, cid, cid, "", keys.public)
    heard: dict[str, list[frozenset[str]]] = {"a": [], "b": []}
    a = LessonWatch(factory, heard["a"].append)
    b = LessonWatch(factory, heard["b"].append)
    start = utcnow() + timedelta(hours=1)
    with factory() as s:
        schedule_lesson(s, "lead", ["recv"], start, start + timedelta(minutes=40))
    assert heard["a"] and heard["b"]
    assert {"lead", "recv"} <= set().union(*heard["a"])
    b.close()
    a.close()
    a.close()  # twice: harmless
    heard["a"].clear()
    with factory() as s:
        schedule_lesson(s, "lead", ["recv"], start + timedelta(hours=2), start + timedelta(hours=3))
    assert heard["a"] == []
