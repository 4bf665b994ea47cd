"""Fetching the recording a delivery lesson plays, from the controller (upload token,
pinned HTTPS), to the agent's state directory, checked against its SHA-256."""

from __future__ import annotations

import hashlib
import logging
import pathlib
import ssl

import aiohttp

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 1024**3  # a four-hour lesson at a high rate is well under this
CHUNK = 256 * 1024


class FetchError(RuntimeError):
    """The file could not be fetched or did not check out (the message says which)."""


async def fetch_item(
    base_url: str,
    classroom_id: str,
    token: str,
    route: str,
    dest: pathlib.Path,
    sha256: str,
    tls: ssl.SSLContext | None,
) -> pathlib.Path:
    """``route`` on the controller into ``dest`` (kept if it is already there and checks
    out); ``FetchError`` names what went wrong."""
    if dest.exists() and (not sha256 or _sha256(dest) == sha256):
        return dest
    if not base_url.lower().startswith("https://"):
        raise FetchError(f"the controller's address {base_url!r} is not https://; not fetching")
    url = base_url.rstrip("/") + route
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    headers = {"X-Classroom": classroom_id, "Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers=headers, ssl=tls if tls is not None else True) as resp,
        ):
            if resp.status != 200:
                text = (await resp.text())[:300]
                raise FetchError(f"GET {route} answered HTTP {resp.status}: {text}")
            with part.open("wb") as out:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise FetchError(f"GET {route}: over {MAX_BYTES} bytes; refused")
                    digest.update(chunk)
                    out.write(chunk)
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        part.unlink(missing_ok=True)
        raise FetchError(f"GET {route} failed: {err}") from err
    except FetchError:
        part.unlink(missing_ok=True)
        raise
    if sha256 and digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"GET {route}: {size} bytes hashing to {digest.hexdigest()}, expected {sha256}"
        )
    part.replace(dest)
    log.info("playback: fetched %s (%d bytes)", dest.name, size)
    return dest


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
