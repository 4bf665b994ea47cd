"""The agent's talk analytics on real sound (PulseAudio null sinks, benchlib.talk_rig):
a lead room and a receiving room, each with its acoustic loop closed (the other room's
voice comes out of its speakers and back into its microphone), follow a script. Each
room's ``pulse`` microphone driver, echo canceller and tracker must hear its own talk,
and not the other room's voice from its own speakers."""

from __future__ import annotations

import time

import pytest
from benchlib import talk_rig as tr

from tests.peers.pulse import PulseServer

# One code per second: the lead teaches, the class answers, silences (both at once is
# left to bench-analytics: double talk is where echo cancellers are weakest).
LEAD = "..TTTTTT.......TTTT......"
RECEIVER = ".........SSSSS.....SSS..."

# Real-time sound through a closed loop in two rooms: run alone (phase 2), where a loaded
# machine cannot starve the sound threads and break the echo path.
pytestmark = pytest.mark.solo


def _interior(heard: str, script: str, code: str) -> tuple[str, str]:
    """The heard codes in the script's ``code`` seconds and in its silent seconds, each
    leaving out the second on either side of a change (a word across a second's edge)."""
    inside, quiet = "", ""
    for i, c in enumerate(script):
        edge = (i > 0 and script[i - 1] != c) or (i + 1 < len(script) and script[i + 1] != c)
        if not edge:
            if c == code:
                inside += heard[i]
            else:
                quiet += heard[i]
    return inside, quiet


def test_each_room_hears_its_own_talk_not_the_other_through_its_speakers(
    pulse_server: PulseServer,
) -> None:
    for name in ("lt", "rt"):
        pulse_server.add_sink(f"{name}_spk")
        pulse_server.add_sink(f"{name}_mic")
    start = tr.next_whole_second(1.5)
    lead = tr.TalkRoom(pulse_server.server, "lt", True, tr.scripted("lead", start, LEAD))
    receiver = tr.TalkRoom(
        pulse_server.server, "rt", False, tr.scripted("receiver", start, RECEIVER)
    )
    tr.pair([lead, receiver])
    lead.start()
    receiver.start()
    try:
        time.sleep(start + len(LEAD) + 0.5 - time.time())
    finally:
        lead.stop()
        receiver.stop()
    assert lead.error is None and receiver.error is None, (lead.error, receiver.error)
    for room, script, code in ((lead, LEAD, "T"), (receiver, RECEIVER, "S")):
        timeline = room.tracker.timeline()
        assert timeline is not None
        heard = tr.on_script(timeline.codes, timeline.start, start, len(script))
        talk, quiet = _interior(heard, script, code)
        assert talk == code * len(talk), (room.name, script, heard)
        # The other room's voice plays here (the seconds it talks are among these): at
        # most one second of it gets past the echo canceller.
        assert quiet.count(code) <= 1, (room.name, script, heard)
        assert set(heard) <= {code, "."}, heard
