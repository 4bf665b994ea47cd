"""Does a running controller require TLS? (feeds ``scripts/security-check --json``'s ``tls``)

The API, the console, patrol signalling and agent uploads share one listener, so one
probe answers for all four: HTTPS to ``/healthz`` works with the pinned CA, and plain
HTTP to the same port gets no HTTP answer (or an error status).
"""

from __future__ import annotations

import http.client
import pathlib
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from controller.tls.ca import CA_CERT, TLS_DIR
from protocols.tls import pinned_client_context


@dataclass(frozen=True)
class TlsProbe:
    """What the probe saw, with a sentence for people."""

    https_ok: bool
    plain_refused: bool
    detail: str

    @property
    def required(self) -> bool:
        """TLS works and is the only way in."""
        return self.https_ok and self.plain_refused


def probe_tls(base_url: str, trust_pem: str, timeout: float = 5.0) -> TlsProbe:
    """Probe ``https://host:port``: HTTPS with ``trust_pem`` pinned, then plain HTTP."""
    url = urllib.parse.urlsplit(base_url)
    if url.scheme != "https" or not url.hostname:
        return TlsProbe(False, False, f"{base_url}: the controller's URL must be https://HOST:PORT")
    host, port = url.hostname, url.port or 443
    try:
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=pinned_client_context(trust_pem)
        )
        try:
            conn.request("GET", "/healthz")
            status = conn.getresponse().status
        finally:
            conn.close()
        https_ok = status == 200
        https_detail = f"HTTPS /healthz answered {status}"
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as err:
        https_ok, https_detail = False, f"HTTPS failed: {err}"
    plain_status = _plain_status(host, port, timeout)
    plain_refused = plain_status is None or plain_status >= 400
    plain_detail = (
        "plain HTTP got no HTTP answer"
        if plain_status is None
        else f"plain HTTP answered {plain_status}"
    )
    return TlsProbe(https_ok, plain_refused, f"{https_detail}; {plain_detail}")


def check_tls(base_url: str, trust_pem: str, timeout: float = 5.0) -> bool:
    """True when the controller at ``base_url`` serves HTTPS with ``trust_pem`` and
    refuses plain HTTP on the same port."""
    return probe_tls(base_url, trust_pem, timeout).required


def state_trust_pem(state_dir: pathlib.Path) -> str:
    """The county CA a controller made in ``state_dir`` (for probes on the same host)."""
    return (state_dir / TLS_DIR / CA_CERT).read_text()


def _plain_status(host: str, port: int, timeout: float) -> int | None:
    """The status of a plain HTTP GET, or None when no HTTP answer came back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(
                f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    return int(parts[1])
