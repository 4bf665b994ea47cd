"""What a lesson needs from the rest of the agent, and the hooks that hear of its sessions.

The daemon fills in :class:`LessonHooks` for :class:`~edge_agent.lesson_lifecycle.
LessonLifecycle`; room outputs (speakers, displays, floor control) implement
:data:`SessionHook` and :data:`~edge_agent.session.Decoded` to follow each lesson.
"""

from __future__ import annotations

import pathlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_agent.director.programme import ProgrammeDesk
from edge_agent.network.policy import NetworkPolicy
from edge_agent.profile import HardwareProfile
from edge_agent.recording.segments import SegmentInfo
from edge_agent.schedule_cache import ScheduleCache
from edge_agent.session import LessonSession, Requester
from edge_agent.sources import MediaSource
from protocols.messages import Body, TalkTimeline

# Called with a session once it is the current one, or once it is closed.
SessionHook = Callable[[LessonSession], None]


def no_listener(session: LessonSession) -> None:
    """The default session hook: nobody is listening."""


@dataclass(frozen=True)
class LessonHooks:
    """What a lesson needs from the rest of the agent (the daemon provides each)."""

    classroom_id: str
    profile: HardwareProfile
    now: Callable[[], float]  # the controller's clock (the agent's, corrected)
    # The control link: SDP requests, lesson reports, and whether the controller is there.
    request: Requester
    send: Callable[[Body], Awaitable[bool]]
    online: Callable[[], bool]
    # The running devices by name (the daemon's dict), started and stopped by the daemon.
    sources: dict[str, MediaSource]
    ensure_sources: Callable[[list[str]], None]
    stop_sources: Callable[[set[str] | None], None]
    # Recording: where lessons go and how their files reach the upload journal.
    recordings_dir: pathlib.Path
    segment_seconds: float
    on_segment: Callable[[str, str, SegmentInfo], None]  # lesson id, track key, segment
    on_manifest: Callable[[str, pathlib.Path], None]  # lesson id, manifest
    programme_desk: ProgrammeDesk
    network: NetworkPolicy
    check_placement: Callable[[], None]  # raises PlacementRefused on the wrong network
    check_disk: Callable[[int], None]  # make room for this many bytes, or alert
    alerts: dict[str, str]
    schedule: ScheduleCache
    # The lesson's talk timeline for its report (S-T analysis), taken once as it ends.
    talk_timeline: Callable[[str], TalkTimeline | None] = lambda lesson_id: None
