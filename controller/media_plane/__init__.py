"""The media plane (issue 13): which media server carries lessons' audio and video.

Today every lesson's media passes through the controller's own relay, in the process that
also serves the API and the agents; one controller carries about eight lessons. The way
out is an existing SFU, Janus's VideoRoom, with the controller orchestrating rooms instead
of relaying packets. This package is that orchestration, built and tested on its own
before lessons use it.

What it does now:

- ``config``: ``[media_plane] backend`` is ``builtin`` or ``janus``; each
  ``[janus.NAME]`` gives an instance's API and admin API addresses, its admin secret and
  its capacity in lessons. The file is checked once, typed and bounded, and every error
  names the file and the setting (``sample.toml`` is the commented example).
- ``startup``: each instance's API answers ``info`` with the VideoRoom plugin loaded, and
  its admin API accepts the secret; a wrong secret or address is reported naming the
  instance and the setting to fix (``classroom-controller media-plane check``).
- ``watcher``: every few seconds, a VideoRoom ``list`` through each instance's admin API
  (rooms and participants); a dead or silent instance is declared down after
  ``down_after_failures`` failed polls, so within a bound the configuration states.
- ``placement``: the least-loaded healthy instance with room for one more lesson, or the
  built-in relay where ``fallback_to_builtin`` allows; the decision carries its reason.
- ``rooms``: a lesson's VideoRoom with a per-lesson secret (to manage it) and PIN (to
  join it), derived from the instance's admin secret (``room_keys``), neither ever
  logged; destroyed at the lesson's end, idempotently; when an instance goes down its
  lessons get new rooms elsewhere (``plane.MediaPlane``).

Rooms are managed through the admin API's ``message_plugin``: no Janus session has to be
kept alive by the controller, and only a holder of the admin secret can create rooms.

Lessons use it when the controller runs with ``--media-plane FILE`` saying ``backend =
"janus"`` (``controller.lessons.media_rooms``): a lesson is placed as it comes due to
prepare, by a task of its own (a slow or stopped instance holds up only that lesson), and
every ``JoinLesson`` of it carries the placement (instance URL, room, PIN); agents signal
to Janus directly with it, so renegotiating is one round trip and the controller stays out
of the media path; the room's secret never leaves the controller. The room is destroyed
once the lesson is recorded. A lesson nothing fits goes to the built-in relay where
``fallback_to_builtin`` allows it, else it still runs with no live media, its agents
joined and told to record, until a room frees up (asked for every 15 s); either way, and
when an instance is down at placement, the lesson's events carry an ALERT. A lesson with
an agent older than release 0.6 (protocol minor 5, which ignores a placement) runs whole
on the built-in relay, with an ALERT naming the classroom. When an instance dies, its
lessons are re-placed and their agents sent a join with the new room. Each placement is
stored (instance and room; the room's secret and PIN are derived from the admin secret,
``room_keys``, so none is stored): a restarted controller or a new leader adopts the
rooms that still exist and sweeps away the rooms it made that no lesson owns.

Patrol watches lessons on Janus (``viewers``, ``controller.lessons.patrol_janus``): the
live list takes a lesson's feeds from its room (``listparticipants``, each feed's streams
probed once), and a console viewer is a subscriber the controller makes with the room's
PIN; Janus's offer goes to the browser and its answer comes back through the controller,
so the media flows between the browser and Janus only.

Also in place: the built-in relay runs in a process of its own (``controller.relay``),
and ``scripts/bench-capacity`` measures both backends.

What it does not do yet: heartbeats' per-track figures on Janus are the agents' own
(aiortc's statistics; no Janus-side statistics, so patrol shows no frames-in count for a
Janus feed); a browser that vanishes without closing its PeerConnection ends its viewer
only when Janus notices: with ``nat: ice_keepalive_conncheck = true`` in janus.jcfg about
65 s later (start-up warns about an instance without it), else once the lesson is over.
Changing an instance's admin secret orphans the rooms made before (the sweep names them;
Janus drops them when restarted).
"""
