"""The agent's side of staged updates: ask the controller for an offered release, install
it beside the running one, switch and restart; after the restart, prove the new release
healthy or roll back to the previous one, and tell the controller either way.

The controller is asked over HTTPS with the classroom's upload token (the channel uploads
use, its certificate pinned at enrolment). The wheel is trusted only if the release public
key on this PC (put there at install, never sent by the controller) verifies it.

The restart is behind ``restart``: the daemon stops and exits with RESTART_EXIT_CODE, and
systemd (``Restart=on-failure``, after ``ExecStartPre=`` ran the boot guard) starts
whatever ``releases/current`` points at; the tests' supervisor does the same.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import shutil
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.updates import boot_guard
from edge_agent.updates.installer import UpdateError, install
from protocols.releases import (
    MAX_WHEEL_BYTES,
    OFFER_ROUTE,
    REPORT_ROUTE,
    WHEEL_ROUTE,
    UpdateOffer,
    UpdateReport,
)

log = logging.getLogger(__name__)

POLL_S = 300.0  # how often the controller is asked for an offered release
HEALTH_POLL_S = 1.0


class Updater:
    """Polls for offers and settles an update after a restart (see the module docstring)."""

    def __init__(
        self,
        releases: pathlib.Path,
        state_dir: pathlib.Path,
        classroom_id: str,
        running_version: str,
        public_key: Ed25519PublicKey | None,
        credentials: Callable[[], tuple[str, str] | None],
        tls: ssl.SSLContext | None,
        busy: Callable[[], str],
        health: Callable[[], dict[str, bool]],
        restart: Callable[[], None],
        poll_s: float = POLL_S,
    ) -> None:
        self._releases = releases
        self._state_dir = state_dir
        self._classroom = classroom_id
        self._version = running_version
        self._key = public_key
        self._credentials = credentials
        self._tls = tls
        self._busy = busy
        self._health = health
        self._restart = restart
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._restarting = False  # switched (or rolled back): nothing more until restarted
        self.failures = 0
        self.last_error = ""

    async def start(self) -> None:
        """Settle any update in progress, then poll for offers."""
        self._task = asyncio.create_task(self._run(), name="updates")

    async def stop(self) -> None:
        """Stop polling (an install under way is abandoned before its switch)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self._settle()
        except Exception as err:
            self._failed(f"settling the last update failed: {err}")
            log.exception("settling the last update failed; carrying on")
        while not self._restarting:
            try:
                await self._send_outcome()
                await self._poll()
            except Exception as err:
                self._failed(f"{type(err).__name__}: {err}")
                log.exception("update check failed; trying again later")
            await asyncio.sleep(self._poll_s)

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.last_error = why

    # --- after a restart ----------------------------------------------------------------

    async def _settle(self) -> None:
        pending = boot_guard.read_json(self._state_dir / boot_guard.PENDING)
        if pending is None:
            return
        if pending.get("version") != self._version:
            # Switched but started the old release (restarted before the switch took), or
            # a stale file: nothing to prove here.
            if boot_guard.current_venv(self._releases) != pathlib.Path(pending["to_venv"]):
                log.warning("update to %s never started; dropping it", pending.get("version"))
                boot_guard.clear_pending(self._state_dir)
            return
        deadline = float(pending["deadline_at"])
        checks = self._health()
        while not all(checks.values()) and time.time() < deadline:
            await asyncio.sleep(HEALTH_POLL_S)
            checks = self._health()
        outcome: dict[str, Any] = {
            "rollout_id": pending["rollout_id"],
            "version": self._version,
            "checks": checks,
        }
        if all(checks.values()):
            log.info("release %s healthy (%s)", self._version, checks)
            boot_guard.write_outcome(self._state_dir, outcome | {"state": "healthy"})
            boot_guard.clear_pending(self._state_dir)
            self._refresh_guard()
            await self._send_outcome()
            return
        failing = ", ".join(sorted(k for k, ok in checks.items() if not ok))
        reason = f"{self._version} failed its health check ({failing})"
        log.error("%s; rolling back", reason)
        boot_guard.roll_back(self._releases, self._state_dir, reason)
        # Best effort now; the previous release sends it again if this does not arrive.
        await self._send_outcome(keep=True, checks=checks)
        self._restarting = True
        self._restart()

    def _refresh_guard(self) -> None:
        """The boot guard beside the releases becomes this release's copy."""
        try:
            tmp = self._releases / ".boot_guard.py.tmp"
            shutil.copyfile(boot_guard.__file__, tmp)
            tmp.replace(self._releases / "boot_guard.py")
        except OSError as err:
            log.warning("could not refresh the boot guard: %s", err)

    async def _send_outcome(
        self, keep: bool = False, checks: dict[str, bool] | None = None
    ) -> None:
        outcome = boot_guard.read_json(self._state_dir / boot_guard.OUTCOME)
        if outcome is None:
            return
        report = UpdateReport(
            rollout_id=int(outcome["rollout_id"]),
            version=str(outcome["version"]),
            state=outcome["state"],
            running_version=self._version,
            detail=str(outcome.get("detail", "")),
            checks=checks or outcome.get("checks") or {},
        )
        if await self._report(report) and not keep:
            (self._state_dir / boot_guard.OUTCOME).unlink(missing_ok=True)

    # --- offers -------------------------------------------------------------------------

    def _session(self) -> tuple[aiohttp.ClientSession, str] | None:
        creds = self._credentials()
        if creds is None:
            return None
        url, token = creds
        if not url.lower().startswith("https://"):
            raise UpdateError(f"the controller's address {url!r} is not https://; not updating")
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=60),
            headers={"X-Classroom": self._classroom, "Authorization": f"Bearer {token}"},
        )
        return http, url.rstrip("/")

    async def _report(self, report: UpdateReport) -> bool:
        opened = self._session()
        if opened is None:
            return False
        http, base = opened
        try:
            async with (
                http,
                http.post(
                    base + REPORT_ROUTE, json=report.model_dump(mode="json"), ssl=self._tls or True
                ) as resp,
            ):
                if resp.status == 200:
                    return True
                log.warning("update report refused (%d): %s", resp.status, await resp.text())
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("update report not sent: %s", err)
        return False

    async def _poll(self) -> None:
        if boot_guard.read_json(self._state_dir / boot_guard.PENDING) is not None:
            return  # an update is being settled
        if boot_guard.current_venv(self._releases) is None:
            return  # not installed in the releases layout (a developer's run): no updates
        why = self._busy()
        if why:
            log.debug("not asking for updates: %s", why)
            return
        opened = self._session()
        if opened is None:
            return
        http, base = opened
        async with http:
            async with http.get(base + OFFER_ROUTE, ssl=self._tls or True) as resp:
                if resp.status == 204:
                    return
                if resp.status != 200:
                    raise UpdateError(f"update offer refused ({resp.status}): {await resp.text()}")
                offer = UpdateOffer.model_validate(await resp.json())
            await self._take(http, base, offer)

    async def _take(self, http: aiohttp.ClientSession, base: str, offer: UpdateOffer) -> None:
        log.info("release %s offered (rollout %d)", offer.version, offer.rollout_id)
        await self._report(self._state("installing", offer))
        try:
            if self._key is None:
                raise UpdateError("no release public key on this PC; reinstall with install-agent")
            url = base + WHEEL_ROUTE.format(version=offer.version)
            async with http.get(url, ssl=self._tls or True) as resp:
                if resp.status != 200:
                    raise UpdateError(f"wheel download refused ({resp.status})")
                wheel = await _read_bounded(resp, offer.size)
            venv = await asyncio.to_thread(install, self._releases, offer, wheel, self._key)
        except UpdateError as err:
            log.error("release %s not installed: %s", offer.version, err)
            boot_guard.write_outcome(
                self._state_dir,
                {
                    "rollout_id": offer.rollout_id,
                    "version": offer.version,
                    "state": "failed",
                    "detail": str(err),
                },
            )
            await self._send_outcome()
            return
        why = self._busy()
        if why:  # a lesson came up while installing: switch at the next offer
            log.info("release %s installed, not switched: %s", offer.version, why)
            return
        previous = boot_guard.current_venv(self._releases)
        assert previous is not None
        boot_guard.write_pending(
            self._state_dir,
            {
                "rollout_id": offer.rollout_id,
                "version": offer.version,
                "from_version": self._version,
                "from_venv": str(previous),
                "to_venv": str(venv.resolve()),
                "deadline_at": time.time() + offer.health_deadline_s,
                "starts": 0,
            },
        )
        boot_guard.switch(self._releases, venv)
        log.info("switched to release %s; restarting", offer.version)
        self._restarting = True
        self._restart()

    def _state(self, state: str, offer: UpdateOffer, detail: str = "") -> UpdateReport:
        return UpdateReport.model_validate(
            {
                "rollout_id": offer.rollout_id,
                "version": offer.version,
                "state": state,
                "running_version": self._version,
                "detail": detail,
            }
        )


async def _read_bounded(resp: aiohttp.ClientResponse, size: int) -> bytes:
    """The whole body, refused once it runs past the offered size."""
    limit = min(size, MAX_WHEEL_BYTES)
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > limit:
            raise UpdateError(f"the wheel runs past the offered {size} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
