"""Running a test's real lesson on either media backend: the built-in relay or Janus.

``backend`` parametrises a test over both (``janus`` only where Debian's janus and root
are there, else skipped saying what is missing); ``janus_farm`` starts real Janus servers,
each in a network namespace, and stops them after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchlib import janus_plane
from benchlib.janus_plane import JanusFarm
from benchlib.rig import LessonRig

# The Janus variant of a test that is not solo on the relay still runs alone, in the
# second phase: real agents on real Janus timed to delivery starve beside a busy neighbour
# (tests/e2e/test_lesson_on_janus.py).
BOTH = ["builtin", pytest.param("janus", marks=[pytest.mark.janus, pytest.mark.solo])]


def builtin_only(reason: str) -> pytest.MarkDecorator:
    """Parametrise over both backends, with the Janus variant skipped for ``reason``."""
    skipped = pytest.param("janus", marks=[pytest.mark.janus, pytest.mark.skip(reason=reason)])
    return pytest.mark.parametrize("backend", ["builtin", skipped])


@pytest.fixture
def janus_farm() -> Iterator[JanusFarm]:
    """Real Janus servers started on demand; all stopped after the test."""
    why = janus_plane.missing()
    if why is not None:
        pytest.skip(why)
    with janus_plane.janus_farm() as farm:
        yield farm


def on_backend(
    request: pytest.FixtureRequest, rig: LessonRig, backend: str, instances: int = 1
) -> JanusFarm | None:
    """Before the rig starts: on ``janus``, start ``instances`` servers (county-a, ...) and
    point the rig's controller and agents at them; returns the farm (None on builtin)."""
    if backend == "builtin":
        return None
    farm: JanusFarm = request.getfixturevalue("janus_farm")
    names = [f"county-{chr(ord('a') + i)}" for i in range(instances)]
    janus_plane.use_janus(rig, {name: farm.start() for name in names})
    return farm


def assert_on_backend(doc: dict[str, object], backend: str) -> None:
    """The lesson's media went where ``backend`` says (its events name the placement)."""
    events = [str(e["detail"]) for e in doc["events"]]  # type: ignore[attr-defined]
    placed = [e for e in events if e.startswith("media plane: room ")]
    if backend == "builtin":
        assert not placed, events
        return
    assert placed and "on Janus instance county-" in placed[0], events
    assert "relay: {}" in events, f"the built-in relay carried media: {events}"
