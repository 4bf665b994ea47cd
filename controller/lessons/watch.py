"""Which classrooms' lessons a committed transaction changed, told to a callback.

The orchestrator sleeps until its next transition is due; a lesson scheduled, extended,
ended early, switched to broadcast only or reported on must wake it sooner, and the
classrooms concerned need their schedule pushed again. Every such change in this process
goes through a session of the controller's sessionmaker, so a hook on its flushes sees
them all, whichever route, CLI command or thread made them. Changes made by another
process reach the orchestrator at its idle poll instead.

Two ways in: objects flushed (``session.add``, attribute changes) and statements run
through the session (the timetable's bulk ``insert(Lesson)``). A bulk update or delete
whose rows are not known names ``EVERY`` classroom.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from controller.db.models import Lesson, LessonReceiver

_KEY = "classbridge.lessons_changed"
# Every open watch: ``touched`` tells each of them (each keeps its own key in a session's
# info, so two watches on one sessionmaker both hear a change).
_WATCHES: weakref.WeakSet[LessonWatch] = weakref.WeakSet()
EVERY = "*"  # a change whose classrooms are not known: every classroom's schedule

OnChange = Callable[[frozenset[str]], None]


def _touched(obj: object) -> set[str] | None:
    """The classrooms a changed row concerns; None if it is not a lesson's row."""
    if isinstance(obj, LessonReceiver):
        return {obj.classroom_id} if obj.classroom_id else set()
    if isinstance(obj, Lesson):
        # Read what is loaded only: a flush must not load relationships.
        loaded = inspect(obj).dict
        ids = {str(loaded["lead_classroom_id"])} if loaded.get("lead_classroom_id") else set()
        ids.update(r.classroom_id for r in loaded.get("receivers") or ())
        return ids
    return None


def touched(session: Session, classroom_ids: set[str]) -> None:
    """Say that this transaction changes the lessons of ``classroom_ids`` in a way the
    hooks cannot see (a row that belongs to a lesson but is not one: its live push
    targets); the watch tells its callback at commit as for any lesson change."""
    for watch in list(_WATCHES):
        session.info.setdefault(watch.key, set()).update(classroom_ids)


class LessonWatch:
    """Hooks a sessionmaker; calls ``on_change`` after each commit that changed a lesson."""

    def __init__(self, sessions: sessionmaker[Session], on_change: OnChange) -> None:
        self._sessions = sessions
        self._on_change = on_change
        # Where this watch gathers a session's changes until it commits.
        self.key = f"{_KEY}.{id(self)}"
        _WATCHES.add(self)
        self._hooks: list[tuple[str, Callable[..., None]]] = [
            ("before_flush", self._flushing),
            ("do_orm_execute", self._executing),
            ("after_commit", self._committed),
            ("after_soft_rollback", self._rolled_back),
        ]
        for name, hook in self._hooks:
            event.listen(sessions, name, hook)

    def close(self) -> None:
        """Unhook."""
        _WATCHES.discard(self)
        for name, hook in self._hooks:
            if event.contains(self._sessions, name, hook):  # closing twice is harmless
                event.remove(self._sessions, name, hook)

    def _flushing(self, session: Session, _context: Any, _instances: Any) -> None:
        for obj in chain(session.new, session.dirty, session.deleted):
            ids = _touched(obj)
            if ids is not None:
                session.info.setdefault(self.key, set()).update(ids)

    def _executing(self, state: ORMExecuteState) -> None:
        if not (state.is_insert or state.is_update or state.is_delete):
            return
        mapper = state.bind_mapper
        if mapper is None or mapper.class_ not in (Lesson, LessonReceiver):
            return
        params: Any = state.parameters
        rows: list[Any] = params if isinstance(params, list) else [params] if params else []
        ids = {
            str(row[key])
            for row in rows
            for key in ("lead_classroom_id", "classroom_id")
            if row.get(key)
        }
        state.session.info.setdefault(self.key, set()).update(ids or {EVERY})

    def _committed(self, session: Session) -> None:
        ids = session.info.pop(self.key, None)
        if ids is not None:
            self._on_change(frozenset(ids))

    # An instance's method, not a static one: two watches on one sessionmaker (the
    # orchestrator's and the cluster node's) must be two listeners, or the second close
    # finds the shared one already removed.
    def _rolled_back(self, session: Session, previous: Any) -> None:
        if not getattr(previous, "nested", False):  # a savepoint's rollback keeps the rest
            session.info.pop(self.key, None)
