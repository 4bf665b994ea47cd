"""Which GET routes return personal data — children's images and voices — and so write an
audit row on every read (等保: who watched what, when, for how long).

Every GET route of the controller is in exactly one of the two tables below; a test lists
the application's routes and fails on one that is in neither, so a new route has to be
classified when it is added. ``controller.auth.audit_check.unaudited_routes`` exercises
each route of PERSONAL_READS against a running controller and reports those that left no
audit row.
"""

from __future__ import annotations

# Route pattern → the audit action its reads are written as. Patrol's live viewing itself
# is POST/DELETE /api/v1/lessons/{lesson}/watch (audited as 'watch' / 'watch_end').
PERSONAL_READS: dict[str, str] = {
    # Playback and download of a stitched recording, or the redirect to its signed URL.
    "/api/v1/recordings/{lesson}/{classroom}/{file}": "play_recording",
    # The catalogue: recording search, a lesson's recordings, a lesson with its recordings.
    "/api/v1/recordings": "list_recordings",
    "/api/v1/lessons/{lesson}/recordings": "read_catalogue",
    "/api/v1/lessons/{lesson}": "read_lesson",
    # The resource library: its items name lessons, teachers and schools, and their media
    # and packages are the recordings themselves.
    "/api/v1/library/items": "list_library",
    "/api/v1/library/items/{item}": "read_library_item",
    "/api/v1/library/items/{item}/media": "play_library_item",
    "/api/v1/library/items/{item}/package": "export_library_package",
    # Patrol: the live lessons and their feeds.
    "/api/v1/live": "list_live",
}

# Route pattern → why it holds no child's image or voice.
NOT_PERSONAL_READS: dict[str, str] = {
    "/": "the console's page",
    "/console": "the console's static files",
    "/healthz": "liveness",
    "/metrics": "a redirect to /api/v1/metrics",
    "/api/v1/metrics": "fleet figures for Prometheus: counts, media rates, latency",
    "/api/v1/openapi.json": "the API description",
    "/api/v1/session": "the caller's own session",
    "/api/v1/classrooms": "classroom inventory and agent health",
    "/api/v1/classrooms/{id}": "one classroom's inventory",
    "/api/v1/classrooms/{id}/health": "an agent's CPU, memory, network figures",
    "/api/v1/lessons": "the lesson list: times and classrooms",
    "/api/v1/lessons/{lesson}/floor": "which room has the floor",
    "/api/v1/lessons/{lesson}/playback": "which library item a lesson plays, and for how long",
    # The item's file does show children, but only the playing room's agent may fetch it
    # (its upload token, no console user): the route writes 'playback_fetch' itself.
    "/api/v1/agent/playback/{lesson}": "an agent's fetch of the item it plays, audited by "
    "the route as playback_fetch",
    "/api/v1/lessons/{lesson}/review": "inspectors' notes and scores of a lesson (text)",
    "/api/v1/review/rubric": "the county's scoring rubric",
    "/api/v1/lessons/{lesson}/analytics": "who talked when (S-T analysis): a code per second, "
    "no sound",
    "/api/v1/deletions": "storage keys and sizes of deleted recordings",
    "/api/v1/timetable": "the timetable",
    "/api/v1/timetable.ics": "the timetable as iCalendar",
    "/api/v1/reports/pairings": "lesson counts per pairing",
    "/api/v1/reports/quotas": "quota figures per school, teacher, subject or pairing",
    "/api/v1/terms/{term}/quotas": "a term's declared quotas",
    "/api/v1/reports/archive": "the stored monthly and term reports' names",
    "/api/v1/reports/archive/{term}/{period}/{file}": "a stored report: lesson counts and "
    "quota figures per school, teacher, subject or pairing",
    "/api/v1/dashboard": "lesson times, classroom states, alerts",
    "/api/v1/network-profiles": "network settings",
    "/api/v1/network-profiles/{name}": "network settings",
    "/api/v1/bandwidth": "uplink figures",
    "/api/v1/audit": "the audit log (adults' actions; readers are audited by role)",
    "/api/v1/users": "console accounts",
    "/api/v1/tokens": "API tokens (their ids, owners and expiry; never the secret)",
    "/api/v1/notify/subscriptions": "alert recipients: staff channels, secrets masked",
    "/api/v1/notify/subscriptions/{subscription}": "one alert recipient, secrets masked",
    "/api/v1/notify/status": "each alert channel's health and the messages waiting",
    "/api/v1/lessons/{lesson}/push": "a lesson's live push targets (keys redacted) and states",
    "/api/v1/lessons/{lesson}/publish": "whether a lesson is published, and its intranet "
    "link (signing a public link is a POST, audited)",
    "/api/v1/emergency": "emergency switches: schools, times, lessons held, watch links",
    "/api/v1/releases": "agent releases, update rings and rollouts",
    "/api/v1/agent/update": "an agent's update offer (the agent's own credential)",
    "/api/v1/agent/releases/{version}/wheel": "an agent release's wheel (software)",
}


def personal_action(method: str, pattern: str) -> str | None:
    """The audit action of a personal-data read, or None if the route is not one."""
    if method not in ("GET", "HEAD"):
        return None
    return PERSONAL_READS.get(pattern)
