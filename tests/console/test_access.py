"""Who may call what: every role against representative routes, CSRF, expiry, audit."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from console.harness import PASSWORD, Console
from helpers import REPO
from sqlalchemy import update

from controller.auth.roles import PERMISSIONS, READ_ACTIONS, ROLES, allowed
from controller.db.models import WebSession

START = (datetime.now(UTC) + timedelta(days=3)).replace(hour=2, minute=0, second=0, microsecond=0)


def _lesson(offset_h: int) -> dict[str, Any]:
    start = START + timedelta(hours=offset_h)
    return {
        "lead": "city-101",
        "receivers": ["village-201"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=40)).isoformat(),
    }


PROFILE = tomllib.loads((REPO / "hardware_profiles/network/city-school.toml").read_text())

# (method, route pattern as in PERMISSIONS, concrete path, JSON body)
ENDPOINTS: list[tuple[str, str, str, Any]] = [
    ("GET", "/api/v1/lessons", "/api/v1/lessons", None),
    ("POST", "/api/v1/lessons", "/api/v1/lessons", "lesson"),
    (
        "PUT",
        "/api/v1/network-profiles/{name}",
        "/api/v1/network-profiles/city-school",
        PROFILE,
    ),
    ("GET", "/api/v1/audit", "/api/v1/audit", None),
    ("GET", "/api/v1/users", "/api/v1/users", None),
    ("POST", "/api/v1/users", "/api/v1/users", "user"),
    (
        "POST",
        "/api/v1/classrooms/{classroom}/actions",
        "/api/v1/classrooms/city-101/actions",
        {"action": "doctor"},
    ),
    ("GET", "/api/v1/recordings", "/api/v1/recordings", None),
    ("GET", "/api/v1/lessons/{lesson}/floor", "/api/v1/lessons/L404/floor", None),
    ("PUT", "/api/v1/lessons/{lesson}/floor", "/api/v1/lessons/L404/floor", {"speaking": None}),
]
# Allowed, but the classroom's agent is not connected in this test: 409 says so.
NO_AGENT = {"/api/v1/classrooms/{classroom}/actions"}
# Allowed, but the lesson does not exist: 404 (not 401/403) says so.
NO_LESSON = {"/api/v1/lessons/{lesson}/floor"}

# The same table written out by hand, so a change to PERMISSIONS must be made twice.
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/lessons"): set(ROLES),
    ("POST", "/api/v1/lessons"): {"admin", "scheduler"},
    ("PUT", "/api/v1/network-profiles/{name}"): {"admin", "scheduler"},
    ("GET", "/api/v1/audit"): {"admin", "inspector"},
    ("GET", "/api/v1/users"): {"admin"},
    ("POST", "/api/v1/users"): {"admin"},
    ("POST", "/api/v1/classrooms/{classroom}/actions"): {"admin", "technician"},
    ("GET", "/api/v1/recordings"): set(ROLES) - {"teacher"},
    ("GET", "/api/v1/lessons/{lesson}/floor"): set(ROLES),
    ("PUT", "/api/v1/lessons/{lesson}/floor"): {"admin", "scheduler", "teacher"},
}


def _browser_like(console: Console) -> aiohttp.ClientSession:
    """A client that keeps cookies from 127.0.0.1, as a browser does."""
    return console.session(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _sign_in(http: aiohttp.ClientSession, base: str, user: str) -> str:
    async with http.post(
        f"{base}/api/v1/session", json={"username": user, "password": PASSWORD}
    ) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["csrf"])


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix_follows_the_permissions_table(console: Console, role: str) -> None:
    async with console.session(headers=console.bearer(role)) as http:
        for n, (method, pattern, path, body) in enumerate(ENDPOINTS):
            if body == "lesson":
                body = _lesson(n)
            elif body == "user":
                body = {"username": f"new-{role}", "role": "inspector", "password": PASSWORD}
            expected = role in EXPECTED[(method, pattern)]
            assert allowed(role, method, pattern) == expected, (role, method, pattern)
            async with http.request(method, console.base + path, json=body) as r:
                text = await r.text()
                if expected:
                    assert r.status not in (401, 403), (role, method, path, r.status, text)
                    ok = (
                        r.status < 300
                        or (pattern in NO_AGENT and r.status == 409)
                        or (pattern in NO_LESSON and r.status == 404)
                    )
                    assert ok, (role, method, path, r.status, text)
                else:
                    assert r.status == 403, (role, method, path, r.status, text)
                    error = (await r.json())["error"]
                    assert f"role '{role}' may not {method}" in error and "may read" in error


async def test_inspector_changes_only_reviews_and_technician_cannot_edit_the_timetable(
    console: Console,
) -> None:
    # Watching a live lesson (patrol) is a read made with POST/DELETE: every role may.
    writes = [
        key for key in PERMISSIONS if key[0] not in ("GET", "HEAD") and key not in READ_ACTIONS
    ]
    for method, pattern in READ_ACTIONS:
        assert allowed("inspector", method, pattern), (method, pattern)
    # Reviewing a lesson (评课: notes and a score) and the resource library's items
    # (approve, reject, unpublish) are the inspector's only changes.
    reviews = {
        ("POST", "/api/v1/lessons/{lesson}/notes"),
        ("PUT", "/api/v1/lessons/{lesson}/score"),
        ("POST", "/api/v1/library/items/{item}/review"),
        ("POST", "/api/v1/library/items/{item}/unpublish"),
    }
    for method, pattern in writes:
        if pattern in ("/api/v1/session", "/api/v1/session/password"):
            continue  # signing out and changing your own password: every role may
        expected = (method, pattern) in reviews
        assert allowed("inspector", method, pattern) is expected, (method, pattern)
    for method, pattern in writes:
        if pattern.startswith(("/api/v1/lessons", "/api/v1/timetable")):
            assert not allowed("technician", method, pattern)
    # A write no table row names is refused to everyone, admin included.
    assert not allowed("admin", "DELETE", "/api/v1/lessons/{lesson}")
    async with (
        console.session(headers=console.bearer("technician")) as http,
        http.post(f"{console.base}/api/v1/lessons", json=_lesson(9)) as r,
    ):
        assert r.status == 403
        assert "technician" in (await r.json())["error"]


async def test_no_credential_unknown_token_and_public_routes(console: Console) -> None:
    async with console.session() as http:
        async with http.get(f"{console.base}/api/v1/lessons") as r:
            assert r.status == 401 and "sign in first" in (await r.json())["error"]
        async with http.get(
            f"{console.base}/api/v1/lessons", headers={"Authorization": "Bearer cbt_nope"}
        ) as r:
            assert r.status == 401 and "unknown API token" in (await r.json())["error"]
        for path in ("/healthz", "/api/v1/openapi.json", "/"):
            async with http.get(console.base + path) as r:
                assert r.status == 200, path
        async with http.get(f"{console.base}/api/v1/openapi.json") as r:
            doc = await r.json()
        assert "bearerToken" in doc["components"]["securitySchemes"]
        assert "/api/v1/session" in doc["paths"] and "/api/v1/audit" in doc["paths"]
        # Agent uploads keep their own check (X-Classroom + upload token), not a console one.
        async with http.post(f"{console.base}/api/v1/uploads", json={}) as r:
            assert r.status == 401 and "upload token" in (await r.json())["error"]


async def test_csrf_is_required_for_cookie_changes_but_not_for_tokens(console: Console) -> None:
    url = f"{console.base}/api/v1/lessons"
    async with _browser_like(console) as http:
        csrf = await _sign_in(http, console.base, "scheduler")
        async with http.get(f"{console.base}/api/v1/session") as r:
            doc = await r.json()
            assert doc["user"] == "scheduler" and doc["role"] == "scheduler"
            assert doc["csrf"] == csrf
        async with http.post(url, json=_lesson(20)) as r:
            assert r.status == 403 and "missing CSRF token" in (await r.json())["error"]
        async with http.post(url, json=_lesson(20), headers={"X-CSRF-Token": "x" * 43}) as r:
            assert r.status == 403 and "wrong CSRF token" in (await r.json())["error"]
        async with http.post(url, json=_lesson(20), headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 201, await r.text()
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.post(url, json=_lesson(21)) as r,
    ):
        assert r.status == 201, await r.text()


async def test_cookie_flags_sign_out_and_expired_session(console: Console) -> None:
    async with _browser_like(console) as http:
        async with http.post(
            f"{console.base}/api/v1/session", json={"username": "admin", "password": PASSWORD}
        ) as r:
            cookie = r.headers["Set-Cookie"]
            csrf = (await r.json())["csrf"]
            hsts = r.headers.get("Strict-Transport-Security")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "; Secure" in cookie  # the console is served over HTTPS only
        assert hsts == "max-age=31536000"
        async with http.delete(
            f"{console.base}/api/v1/session", headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 200
        async with http.get(f"{console.base}/api/v1/session") as r:
            assert r.status == 401
    async with _browser_like(console) as http:
        await _sign_in(http, console.base, "inspector")
        with console.db() as s:
            s.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(1)))
            s.commit()
        async with http.get(f"{console.base}/api/v1/lessons") as r:
            assert r.status == 401 and "expired" in (await r.json())["error"]


async def test_audit_rows_for_changes_failed_sign_ins_and_throttling(console: Console) -> None:
    async with console.session() as http:
        for _ in range(5):
            async with http.post(
                f"{console.base}/api/v1/session", json={"username": "locky", "password": "nope"}
            ) as r:
                last = (r.status, (await r.json())["error"], r.headers.get("Retry-After"))
        assert last == (401, "wrong user name or password", "2")
        # This address now waits, even with the right password (see test_sign_in_throttle).
        async with http.post(
            f"{console.base}/api/v1/session", json={"username": "locky", "password": PASSWORD}
        ) as r:
            assert r.status == 429 and r.headers["Retry-After"] in ("1", "2")
        # An unknown name gets the same answers, so they tell nothing about who exists.
        answers = []
        for _ in range(6):
            async with http.post(
                f"{console.base}/api/v1/session", json={"username": "ghost", "password": "nope"}
            ) as r:
                answers.append((r.status, (await r.json())["error"], r.headers.get("Retry-After")))
        assert answers[0] == (401, "wrong user name or password", None)
        assert answers[4] == last and answers[5][0] == 429
    async with (
        console.session(headers=console.bearer("scheduler")) as http,
        http.post(f"{console.base}/api/v1/lessons", json=_lesson(30)) as r,
    ):
        assert r.status == 201
    async with console.session(headers=console.bearer("inspector")) as http:
        async with http.get(f"{console.base}/api/v1/audit?limit=500") as r:
            rows = await r.json()
        async with http.get(
            f"{console.base}/api/v1/audit?user=locky&action=sign_in_throttled"
        ) as r:
            throttled = await r.json()
    actions = [(row["username"], row["action"]) for row in rows]
    assert actions.count(("locky", "sign_in_failed")) == 6
    assert ("locky", "sign_in_throttled") in actions and ("ghost", "sign_in_throttled") in actions
    change = next(row for row in rows if row["action"] == "POST /api/v1/lessons")
    assert change["username"] == "scheduler" and change["role"] == "scheduler"
    assert change["detail"]["status"] == 201 and change["remote"] == "127.0.0.1"
    assert len(throttled) == 1 and throttled[0]["detail"] == {"failures": 5, "seconds": 2}
    async with console.session(headers=console.bearer("admin")) as http:
        async with http.post(f"{console.base}/api/v1/users/locky/unlock") as r:
            assert r.status == 200
        async with http.post(
            f"{console.base}/api/v1/session", json={"username": "locky", "password": PASSWORD}
        ) as r:
            assert r.status == 200
