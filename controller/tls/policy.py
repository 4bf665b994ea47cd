"""Which requests the HTTP API serves: HTTPS, or plain HTTP from a trusted TLS-terminating
proxy that says the browser spoke HTTPS to it. Every served response carries HSTS.

Behind a proxy (nginx, a county gateway) the controller also listens on a plain port
(``--proxy-port``). Requests there are served only when they come from a ``--trusted-proxy``
network *and* carry ``X-Forwarded-Proto: https``; they are then treated as HTTPS (the session
cookie stays ``Secure``), and the client address is the last ``X-Forwarded-For`` entry, the
one the trusted proxy appended. Everything else is refused with 403 and what to do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from controller.common.api_common import error

HSTS = "max-age=31536000"  # one year; no includeSubDomains: the county's other hosts are theirs
FORWARDED_HTTPS = web.RequestKey("classbridge.forwarded_https", bool)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (an address or a CIDR); raises ``ValueError`` naming the
    bad one."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as err:
            raise ValueError(
                f"--trusted-proxy {item!r} is not an address or CIDR, e.g. 10.0.0.5/32"
            ) from err
    return tuple(networks)


@dataclass(frozen=True)
class TlsPolicy:
    """The HTTPS rule of one HTTP API: its trusted proxies (none by default)."""

    trusted_proxies: tuple[Network, ...] = field(default=())

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` (a peer's IP) is one of the trusted proxies."""
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted_proxies)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Serve HTTPS; serve plain HTTP only as a trusted proxy's forwarded HTTPS."""
        if request.transport is not None and request.transport.get_extra_info("sslcontext"):
            return await handler(request)
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if not self.trusts(request.remote):
            return error(
                403,
                f"plain HTTP refused from {request.remote}: this controller serves HTTPS "
                "only; use https:// (a TLS-terminating proxy must be listed with "
                "--trusted-proxy)",
            )
        if proto != "https":
            return error(
                403,
                "plain HTTP refused: the trusted proxy must terminate TLS and send "
                "X-Forwarded-Proto: https",
            )
        # add_hsts sees this on responses the handler prepares itself (they get the clone);
        # the others are prepared with the connection's first request, set here.
        request[FORWARDED_HTTPS] = True
        forwarded = request.headers.get("X-Forwarded-For", "")
        client = forwarded.rsplit(",", 1)[-1].strip() or request.remote or ""
        try:
            response = await handler(request.clone(scheme="https", remote=client))
        except web.HTTPException as exc:
            exc.headers.setdefault("Strict-Transport-Security", HSTS)
            raise
        if not response.prepared:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response


async def add_hsts(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: HSTS on every response to a browser that used HTTPS."""
    if request.secure or request.get(FORWARDED_HTTPS, False):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
