"""The agent's side of the Janus media plane (issue 13): publish and subscribe in a
lesson's VideoRoom, with the same encoded frames and the same aiortc seam as the built-in
relay path in ``edge_agent.session``.

- ``janus_session``: one Janus session over the HTTP API (create, long-poll for events,
  keepalives, destroy), a timeout on every call, and loss declared promptly;
- ``videoroom``: a plugin handle; the VideoRoom's refusals become ``JanusDenied`` naming
  the instance and what to do (``exceptions`` holds the hierarchy);
- ``publisher``: a classroom's pre-encoded H.264 and Opus tracks, never re-encoded, on one
  handle with one m-line per track; keyframe requests reach the source's encoder;
- ``subscriber``: one remote classroom's tracks, tapped for the recorder and decoded for
  the room's outputs, exactly as the session receives from the relay;
- ``feeds``: who publishes what, found by classroom (display) and track (description);
- ``lesson``: one classroom's whole lesson through Janus, from a ``JoinLesson`` and its
  ``JanusPlacement`` (``protocols.messages``);
- ``link``: that lesson's media kept up: re-joined with backoff when the instance is lost.

Signalling goes from the agent to Janus directly, not through the controller:

- renegotiation (a classroom re-joining, a new subscription) is one HTTP round trip to
  the instance, not two hops through the controller's event loop, which is the very loop
  the Janus backend exists to unload;
- the controller leaves the media path entirely: a controller restart or fail-over does
  not stop media, and its CPU per lesson stays at orchestration;
- secrets stay where they belong: the room's secret (create, destroy, kick) stays on the
  controller, and the agent is given only the instance URL, the room and its PIN, which
  admit it to that one room and nothing else. The cost is that agents must reach the
  instance's API; on a county network that is the same reach they need for its media.

Lessons use it: a ``JoinLesson`` whose ``media`` names a placement makes
``LessonSession.connect`` join that room (``link``: a lost instance is re-joined on the same
placement with backoff until the controller sends a new one), with the session's own sent
tracks, recording taps, decoding, DSCP marks, rate adapter and QoS figures. Console patrol
viewers subscribe in the same room through the controller (``controller.media_plane.viewers``).
"""
