"""Roles and the permission table every ``/api/v1`` request is checked against."""

from __future__ import annotations

ADMIN = "admin"
SCHEDULER = "scheduler"
TECHNICIAN = "technician"
INSPECTOR = "inspector"
# The lead teacher (主讲教师): follows the lessons and gives the floor in the ones they teach.
TEACHER = "teacher"
ROLES: tuple[str, ...] = (ADMIN, SCHEDULER, TECHNICIAN, INSPECTOR, TEACHER)

ALL = frozenset(ROLES)
# Everyone who runs or oversees the network; teachers see less (TEACHER_READS).
STAFF = frozenset({ADMIN, SCHEDULER, TECHNICIAN, INSPECTOR})
FLOOR_GIVERS = frozenset({ADMIN, SCHEDULER, TEACHER})
SCHEDULING = frozenset({ADMIN, SCHEDULER})
ADMIN_ONLY = frozenset({ADMIN})
AUDIT_READERS = frozenset({ADMIN, INSPECTOR})
ALERT_HANDLERS = frozenset({ADMIN, SCHEDULER, TECHNICIAN})
TECHNICIANS = frozenset({ADMIN, TECHNICIAN})
REVIEWERS = frozenset({ADMIN, INSPECTOR})
LIBRARY_KEEPERS = frozenset({ADMIN, SCHEDULER, INSPECTOR})

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# (method, route pattern) → roles allowed. A GET not listed here is open to every role; any
# other method not listed is refused to every role (default deny for writes).
PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    # The signed-in browser's own session.
    ("GET", "/api/v1/session"): ALL,
    ("DELETE", "/api/v1/session"): ALL,
    # Timetable, lessons, series, terms, imports, network profiles.
    ("POST", "/api/v1/timetable/import"): SCHEDULING,
    ("POST", "/api/v1/lessons"): SCHEDULING,
    ("POST", "/api/v1/lessons/check"): SCHEDULING,
    ("POST", "/api/v1/lessons/{lesson}/move"): SCHEDULING,
    ("POST", "/api/v1/lessons/{lesson}/override"): SCHEDULING,
    ("PUT", "/api/v1/network-profiles/{name}"): SCHEDULING,
    ("POST", "/api/v1/network-profiles/{name}/assign"): SCHEDULING,
    # A term's quotas (考核指标) and writing a monthly or term report now.
    ("PUT", "/api/v1/terms/{term}/quotas"): SCHEDULING,
    ("POST", "/api/v1/reports/archive"): SCHEDULING,
    # The audit log.
    ("GET", "/api/v1/audit"): AUDIT_READERS,
    # User management.
    ("GET", "/api/v1/users"): ADMIN_ONLY,
    ("POST", "/api/v1/users"): ADMIN_ONLY,
    ("POST", "/api/v1/users/{username}/unlock"): ADMIN_ONLY,
    ("POST", "/api/v1/users/{username}/disable"): ADMIN_ONLY,
    ("POST", "/api/v1/users/{username}/enable"): ADMIN_ONLY,
    ("GET", "/api/v1/tokens"): ADMIN_ONLY,
    ("DELETE", "/api/v1/tokens/{token}"): ADMIN_ONLY,
    # Everyone changes their own password (proving the current one).
    ("PUT", "/api/v1/session/password"): ALL,
    # Patrol: watching a live lesson opens a receive-only WebRTC viewer. It changes
    # nothing, so every staff role may (see READ_ACTIONS); it is audited as 'watch'.
    # Teachers do not patrol other teachers' rooms.
    ("POST", "/api/v1/lessons/{lesson}/watch"): STAFF,
    ("DELETE", "/api/v1/lessons/{lesson}/watch/{viewer}"): STAFF,
    # A lesson on Janus: the browser's answer to Janus's offer, for its own viewer.
    ("POST", "/api/v1/lessons/{lesson}/watch/{viewer}/answer"): STAFF,
    # Alerts raised from heartbeats: acknowledge, silence for maintenance.
    ("POST", "/api/v1/alerts/{alert}/ack"): ALERT_HANDLERS,
    ("POST", "/api/v1/alerts/{alert}/silence"): ALERT_HANDLERS,
    # Who is told of alerts (DingTalk/WeCom robots, e-mail): the same people.
    ("POST", "/api/v1/notify/subscriptions"): ALERT_HANDLERS,
    ("PATCH", "/api/v1/notify/subscriptions/{subscription}"): ALERT_HANDLERS,
    ("DELETE", "/api/v1/notify/subscriptions/{subscription}"): ALERT_HANDLERS,
    ("POST", "/api/v1/notify/subscriptions/{subscription}/test"): ALERT_HANDLERS,
    # Recordings: every staff role searches and plays them (not teachers: these are
    # children's images); publishing to the resource library is a scheduling decision.
    ("GET", "/api/v1/recordings"): STAFF,
    ("GET", "/api/v1/recordings/{lesson}/{classroom}/{file}"): STAFF,
    ("POST", "/api/v1/recordings/{lesson}/{classroom}/{track}/publish"): SCHEDULING,
    # The resource library (资源库, controller.library): schedulers ask to publish and cut
    # clips, an inspector or admin other than the requester approves or rejects, and any
    # of them may unpublish. Reads are staff's, like recordings.
    ("GET", "/api/v1/library/items"): STAFF,
    ("GET", "/api/v1/library/items/{item}"): STAFF,
    ("GET", "/api/v1/library/items/{item}/media"): STAFF,
    ("GET", "/api/v1/library/items/{item}/package"): STAFF,
    ("POST", "/api/v1/library/items"): SCHEDULING,
    ("POST", "/api/v1/library/clips"): SCHEDULING,
    ("POST", "/api/v1/library/items/{item}/review"): REVIEWERS,
    ("POST", "/api/v1/library/items/{item}/unpublish"): LIBRARY_KEEPERS,
    # Delivery lessons on demand (专递课堂 by video, controller.delivery): scheduling.
    ("POST", "/api/v1/library/items/{item}/deliveries"): SCHEDULING,
    # Technicians' remote actions on a classroom PC: doctor, logs, PTZ preset, restart.
    ("POST", "/api/v1/classrooms/{classroom}/actions"): TECHNICIANS,
    # Floor control (课堂互动): call on one receiving room of a live lesson. A teacher may
    # only in the lessons they teach (OWN_LESSONS_ONLY, checked by the handler).
    ("PUT", "/api/v1/lessons/{lesson}/floor"): FLOOR_GIVERS,
    # A lesson's live push targets (直播推流): DingTalk or WeChat live rooms, set by the
    # people who make the timetable (the addresses hold the platforms' stream keys).
    ("PUT", "/api/v1/lessons/{lesson}/push"): SCHEDULING,
    # The emergency switch (线下线上瞬时切换): a school's or the county's lessons online
    # only, and back; a school account only for its own school (the handler checks).
    ("POST", "/api/v1/emergency"): SCHEDULING,
    ("POST", "/api/v1/emergency/{switch}/end"): SCHEDULING,
    # Publishing a lesson as HLS for many viewers (公开课) and signing its watch links.
    ("POST", "/api/v1/lessons/{lesson}/publish"): SCHEDULING,
    ("DELETE", "/api/v1/lessons/{lesson}/publish"): SCHEDULING,
    # Lesson review (评课): inspectors pin notes to moments of a lesson and score it
    # against the county's rubric, which only an administrator changes.
    ("POST", "/api/v1/lessons/{lesson}/notes"): REVIEWERS,
    ("PUT", "/api/v1/lessons/{lesson}/score"): REVIEWERS,
    ("PUT", "/api/v1/review/rubric"): ADMIN_ONLY,
    # Prometheus's scrape (every classroom's figures): the people who run the fleet.
    ("GET", "/api/v1/metrics"): TECHNICIANS,
    # Staged agent updates: rings and rollouts change what runs in every classroom.
    ("PUT", "/api/v1/releases/rings"): ADMIN_ONLY,
    ("POST", "/api/v1/releases/rollouts"): ADMIN_ONLY,
    ("POST", "/api/v1/releases/rollouts/{rollout}/{action}"): ADMIN_ONLY,
}

# The reads a teacher may make (every other role may make any GET not in PERMISSIONS): the
# dashboard, classrooms and lessons, not recordings, health or the audit log.
TEACHER_READS: frozenset[str] = frozenset(
    {
        "/api/v1/session",
        "/api/v1/dashboard",
        "/api/v1/classrooms",
        "/api/v1/lessons",
        "/api/v1/lessons/{lesson}",
        "/api/v1/lessons/{lesson}/floor",
    }
)
# Roles whose changes to a lesson are limited to the lessons they teach (Lesson.teacher_id
# is their username).
OWN_LESSONS_ONLY: frozenset[str] = frozenset({TEACHER})

# Writes by HTTP method that change nothing: opening and closing a patrol viewer. Every
# role may make them; the middleware still asks cookie callers for the CSRF token.
READ_ACTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/lessons/{lesson}/watch"),
        ("DELETE", "/api/v1/lessons/{lesson}/watch/{viewer}"),
        ("POST", "/api/v1/lessons/{lesson}/watch/{viewer}/answer"),
    }
)

# Routes that need no console credential: liveness, the API description, signing in, and
# the agents' upload routes (those check X-Classroom plus the classroom's upload token).
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/session"),
        ("POST", "/api/v1/uploads"),
        ("POST", "/api/v1/uploads/{upload}/urls"),
        ("PUT", "/api/v1/uploads/{upload}/parts/{n}"),
        ("POST", "/api/v1/uploads/{upload}/complete"),
        # Agents' updates: the same credential (controller.releases.api).
        ("GET", "/api/v1/agent/update"),
        ("GET", "/api/v1/agent/releases/{version}/wheel"),
        ("POST", "/api/v1/agent/update/report"),
        # The playing room's agent fetches a delivery lesson's item (controller.delivery).
        ("GET", "/api/v1/agent/playback/{lesson}"),
    }
)

WHAT_ROLE_MAY_DO: dict[str, str] = {
    ADMIN: "read everything and change everything, including users",
    SCHEDULER: "read everything except the audit log and users, and change the timetable, "
    "lessons, imports, network profiles and term quotas, write reports, publish recordings, "
    "acknowledge or silence "
    "alerts, and set who is notified of them",
    TECHNICIAN: "read everything except the audit log and users, acknowledge or silence "
    "alerts, set who is notified of them, and run remote actions on classroom PCs "
    "(doctor, logs, PTZ presets, restart); "
    "it cannot change the timetable",
    INSPECTOR: "read everything, including the audit log, review lessons (pin notes "
    "to moments of a lesson and score it against the rubric), and approve, reject or "
    "unpublish resource library items; it changes nothing else",
    TEACHER: "read the dashboard, classrooms and lessons, and call on a receiving room "
    "(give the floor) in the live lessons they teach",
}


def _method(method: str) -> str:
    return "GET" if method == "HEAD" else method


def is_public(method: str, pattern: str) -> bool:
    """Whether the route needs no console session or API token."""
    return (_method(method), pattern) in PUBLIC


def allowed(role: str, method: str, pattern: str) -> bool:
    """Whether ``role`` may call ``method`` on the route ``pattern``, per PERMISSIONS."""
    roles = PERMISSIONS.get((_method(method), pattern))
    if roles is None:
        if role == TEACHER:
            return _method(method) in SAFE_METHODS and pattern in TEACHER_READS
        return _method(method) in SAFE_METHODS and role in ALL
    return role in roles


def refusal(role: str, method: str, pattern: str) -> str:
    """The 403 message: what was refused, and what the role may do instead."""
    return (
        f"your role '{role}' may not {method} {pattern}; "
        f"a {role} may {WHAT_ROLE_MAY_DO.get(role, 'nothing (unknown role)')}"
    )


def check_role(role: str) -> str:
    """``role`` if it is one of ROLES, else ValueError naming the choices."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role
