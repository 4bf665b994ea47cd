"""Every console file, not only the page, carries the CSP and framing headers."""

from __future__ import annotations

from console.harness import Console

from controller.console.routes import HEADERS


async def test_static_console_files_carry_csp_and_framing_headers(console: Console) -> None:
    async with console.session() as http:
        for path in ("/", "/console/index.html", "/console/app.js", "/console/style.css"):
            async with http.get(console.base + path) as r:
                assert r.status == 200, path
                for name in (
                    "Content-Security-Policy",
                    "X-Frame-Options",
                    "X-Content-Type-Options",
                ):
                    assert r.headers.get(name) == HEADERS[name], (path, name)
