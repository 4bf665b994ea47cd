"""A check against a running controller: does every personal-data GET route
(``controller.auth.personal.PERSONAL_READS``) leave an audit row? It feeds
``scripts/security-check --json``'s ``unaudited_routes`` (target: none).

Each route is called once as the probing account, with a query parameter ``audit_probe``
carrying a fresh random value, then the audit log (``GET /api/v1/audit``) is searched for
a row naming that value. A route that answered with an error still counts: attempts to
read are audited too. Blocking (urllib): call it from a thread in async code.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from controller.auth.personal import PERSONAL_READS
from controller.common.errors import ControllerError

PROBE_PARAM = "audit_probe"
# Path parameters filled when the catalogue has no recording to take them from: the
# request then reads nothing, but it must still be audited.
PLACEHOLDERS = {"lesson": "L-audit-probe", "classroom": "audit-probe", "file": "probe.mp4"}
AUDIT_PAGE = 1000


class AuditCheckError(ControllerError):
    """The check could not run (wrong token, controller unreachable…)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A presigned redirect is the read; following it would fetch from storage."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _base_url(app_or_base_url: object) -> str:
    if isinstance(app_or_base_url, str):
        return app_or_base_url.rstrip("/")
    base = getattr(app_or_base_url, "base_url", None)
    if isinstance(base, str):
        return base.rstrip("/")
    port = getattr(app_or_base_url, "port", None)
    if isinstance(port, int) and port:
        return f"http://127.0.0.1:{port}"
    raise AuditCheckError(f"{app_or_base_url!r}: give the controller's base URL")


class _Client:
    def __init__(self, base: str, token: str, context: ssl.SSLContext | None, timeout: float):
        self._base = base
        self._token = token
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self._base + path,
            headers={"Authorization": f"Bearer {token or self._token}", "Range": "bytes=0-1023"},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return response.status, response.read(65536)
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read(65536)
        except OSError as err:
            raise AuditCheckError(f"GET {self._base}{path}: {err}") from err

    def get_json(self, path: str, token: str | None = None) -> Any:
        status, body = self.get(path, token)
        if status != 200:
            raise AuditCheckError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        return json.loads(body)


def _samples(client: _Client) -> dict[str, str]:
    """Path parameter values from the newest catalogued recording, if there is one."""
    doc = client.get_json("/api/v1/recordings?limit=1")
    rows = doc.get("recordings") or []
    if not rows:
        return dict(PLACEHOLDERS)
    lesson, classroom, file = str(rows[0]["url"]).rsplit("/", 3)[1:]
    return {"lesson": lesson, "classroom": classroom, "file": file}


def _fill(pattern: str, values: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return urllib.parse.quote(values.get(name, PLACEHOLDERS.get(name, "probe")), safe="")

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", one, pattern)


def unaudited_routes(
    app_or_base_url: object,
    token: str,
    *,
    auditor_token: str | None = None,
    routes: Mapping[str, str] | None = None,
    samples: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """The route patterns, of ``routes`` (default: every personal-data GET route), whose
    read as ``token``'s user left no audit row.

    ``app_or_base_url``: the controller's base URL (or its running HttpApi);
    ``auditor_token``: an admin's or inspector's token to read the audit log (default
    ``token``); ``samples``: path parameter values (default: the newest recording's).
    """
    client = _Client(_base_url(app_or_base_url), token, ssl_context, timeout)
    who = client.get_json("/api/v1/session").get("user")
    if not isinstance(who, str) or not who:
        raise AuditCheckError("GET /api/v1/session named no user for the probing token")
    values = dict(samples) if samples is not None else _samples(client)
    probes: dict[str, str] = {}
    for pattern in sorted(routes if routes is not None else PERSONAL_READS):
        nonce = secrets.token_hex(12)
        client.get(f"{_fill(pattern, values)}?{PROBE_PARAM}={nonce}")
        probes[pattern] = nonce
    query = urllib.parse.urlencode({"user": who, "limit": AUDIT_PAGE})
    rows = client.get_json(f"/api/v1/audit?{query}", auditor_token)
    targets = " ".join(str(r.get("target", "")) for r in rows)
    return [pattern for pattern, nonce in probes.items() if nonce not in targets]
