"""Placement's choice among instances in given states (the live tests place on real
Janus instances; these cover every branch of the decision and its reason)."""

from __future__ import annotations

import pytest

from controller.media_plane.config import MediaPlaneConfig, parse_config
from controller.media_plane.exceptions import NoCapacity
from controller.media_plane.placement import choose
from controller.media_plane.watcher import InstanceState

pytestmark = pytest.mark.timeout(30)


def config(fallback: bool = False, backend: str = "janus") -> MediaPlaneConfig:
    tables = {
        name: {
            "api_url": f"http://10.0.0.{n}:8088/janus",
            "admin_url": f"http://10.0.0.{n}:7088/admin",
            "admin_secret": "secret-123",
            "capacity": capacity,
        }
        for n, (name, capacity) in enumerate((("a", 4), ("b", 2), ("c", 8)), start=1)
    }
    plane = {"backend": backend, "fallback_to_builtin": fallback}
    return parse_config({"media_plane": plane, "janus": tables})


def up(name: str) -> InstanceState:
    return InstanceState(name, healthy=True, error="")


def test_least_loaded_by_share_of_capacity() -> None:
    states = {"a": up("a"), "b": up("b"), "c": up("c")}
    decision = choose(config(), states, {"a": 2, "b": 0, "c": 4})
    assert decision.instance == "b"  # 0 of 2, where a is 2 of 4 and c 4 of 8
    assert decision.reason.startswith("b: least loaded healthy instance (0 of 2 lessons)")


def test_nothing_fits_says_why_for_each_instance() -> None:
    states = {"a": InstanceState("a", error="connection refused"), "b": up("b"), "c": up("c")}
    exclude = {"c": "room not created: timeout"}
    with pytest.raises(NoCapacity) as caught:
        choose(config(), states, {"b": 2}, exclude=exclude)
    message = str(caught.value)
    assert "a down (connection refused)" in message
    assert "b full (2 of 2 lessons)" in message
    assert "c not used (room not created: timeout)" in message
    assert "fallback_to_builtin = true" in message


def test_fallback_to_builtin_when_allowed() -> None:
    states = {"a": InstanceState("a", error="timed out")}
    decision = choose(config(fallback=True), states, {})
    assert decision.backend == "builtin" and decision.instance is None
    assert "a down (timed out)" in decision.reason
    assert "fallback_to_builtin = true" in decision.reason


def test_builtin_backend_places_nothing_on_janus() -> None:
    states = {"a": up("a"), "b": up("b"), "c": up("c")}
    decision = choose(config(backend="builtin"), states, {})
    assert decision.backend == "builtin" and "backend = 'builtin'" in decision.reason
