"""Errors of the room's sound: the speakers and PulseAudio streams.

Hierarchy::

    AgentError                      (edge_agent.errors)
    └── RoomError                   anything the room's outputs cannot do
        ├── SpeakerError            the profile's speakers are missing or refuse to play
        └── PulseStreamError        a PulseAudio stream would not open, or broke (server
                                    gone, sink/source unloaded); recording or playback

Messages name the device, what went wrong and what to try, so they can be shown to the
technician as they are.
"""

from __future__ import annotations

from edge_agent.errors import AgentError


class RoomError(AgentError):
    """Base of the room outputs' errors."""


class SpeakerError(RoomError):
    """The speakers of the hardware profile cannot be used (missing, busy, unplugged)."""


class PulseStreamError(RoomError):
    """A PulseAudio playback or recording stream would not open or stopped working."""
