"""Placement: the least-loaded healthy Janus instance that has room for one more lesson,
or the built-in relay where the configuration allows it, with the reason either way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.media_plane.config import MediaPlaneConfig
from controller.media_plane.exceptions import NoCapacity
from controller.media_plane.watcher import InstanceState


@dataclass(frozen=True)
class Decision:
    """Where a lesson goes (``backend`` and, for janus, ``instance``) and why."""

    backend: str
    instance: str | None
    reason: str


def choose(
    config: MediaPlaneConfig,
    states: Mapping[str, InstanceState],
    loads: Mapping[str, int],
    exclude: Mapping[str, str] | None = None,
) -> Decision:
    """The decision for one more lesson; ``NoCapacity`` when nothing fits and no fallback.

    ``loads`` counts the lessons (rooms) on each instance against its capacity.
    ``exclude`` maps instances not to use for this lesson to why (a failed room request).
    """
    exclude = exclude or {}
    if config.backend == "builtin":
        return Decision("builtin", None, "[media_plane] backend = 'builtin'")
    fits: list[tuple[float, int, str]] = []
    why_not: list[str] = []
    for inst in config.instances:
        state = states.get(inst.name, InstanceState(inst.name))
        used = loads.get(inst.name, 0)
        if not state.healthy:
            why_not.append(f"{inst.name} down ({state.error})")
        elif inst.name in exclude:
            why_not.append(f"{inst.name} not used ({exclude[inst.name]})")
        elif used >= inst.capacity:
            why_not.append(f"{inst.name} full ({used} of {inst.capacity} lessons)")
        else:
            fits.append((used / inst.capacity, used, inst.name))
    if fits:
        _, used, name = min(fits)
        capacity = config.instance(name).capacity
        others = f"; {'; '.join(why_not)}" if why_not else ""
        reason = f"{name}: least loaded healthy instance ({used} of {capacity} lessons){others}"
        return Decision("janus", name, reason)
    summary = "; ".join(why_not) or "no instance configured"
    if config.fallback_to_builtin:
        return Decision(
            "builtin",
            None,
            f"no Janus instance fits ({summary}); the built-in relay carries it "
            "([media_plane] fallback_to_builtin = true)",
        )
    raise NoCapacity(
        f"no Janus instance fits the lesson ({summary}) — start or repair an instance, add "
        "capacity, or set [media_plane] fallback_to_builtin = true"
    )
