"""Driving the console in Debian's Chromium (never a downloaded browser) for the patrol
browser test and scripts/bench_console.py: launch, sign in, time pages, time first frames.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
from typing import Any

from benchlib.rig import BIN, LessonRig

CHROMIUM = pathlib.Path(os.environ.get("CLASSBRIDGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--autoplay-policy=no-user-gesture-required",
    # The relay listens on loopback; Chromium leaves loopback out and hides host
    # addresses behind mDNS names unless told otherwise.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # A container's /dev/shm is often 64 MB: several renderers with video outgrow it, and
    # a renderer that cannot map shared memory stalls. Use the temporary directory.
    "--disable-dev-shm-usage",
]


def pinned_key_flag(spki_sha256_b64: str) -> str:
    """Chromium trusts the controller's HTTPS by its server key alone: the flag accepts a
    chain only when it contains that exact SubjectPublicKeyInfo (name checks and every
    other certificate stay strict), which is narrower than an NSS database that would
    trust the county CA for every site."""
    return f"--ignore-certificate-errors-spki-list={spki_sha256_b64}"


def rig_chromium_args(rig: LessonRig) -> list[str]:
    """CHROMIUM_ARGS plus the rig controller's server key pinned."""
    return [*CHROMIUM_ARGS, pinned_key_flag(rig.server_spki())]


# Polls the big view's peer connection every 50 ms: ms from `t0` until its lead camera
# (the first feed asked for) has framesDecoded > 0.
FIRST_FRAME_JS = """async ([t0, timeoutMs]) => {
  const deadline = t0 + timeoutMs;
  while (performance.now() < deadline) {
    const view = window.classbridgePatrol && window.classbridgePatrol.view;
    if (view) {
      const mid = view.pc.getTransceivers()[0].mid; // the lead camera
      const stats = await view.pc.getStats();
      for (const s of stats.values()) {
        if (s.type === "inbound-rtp" && s.mid === mid && s.framesDecoded > 0) {
          return performance.now() - t0;
        }
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return -1;
}"""

FRAMES_DECODED_JS = """async () => {
  const view = window.classbridgePatrol && window.classbridgePatrol.view;
  if (!view) return {frames: -1, codec: null, inbound: []};
  const stats = await view.pc.getStats();
  const inbound = [...stats.values()].filter((s) => s.type === "inbound-rtp");
  const mid = view.pc.getTransceivers()[0].mid; // the lead camera: the first feed asked
  const main = inbound.find((s) => s.mid === mid);
  const codec = main && main.codecId && stats.get(main.codecId);
  return {
    frames: main ? main.framesDecoded || 0 : 0,
    codec: codec ? codec.mimeType : null,
    inbound: inbound.map((s) => [s.kind, s.mid, s.trackIdentifier, s.framesDecoded]),
  };
}"""

# Clicks a nav button and resolves with the ms until the page marks its data rendered.
NAV_JS = """async (name) => {
  const main = document.getElementById("page");
  delete main.dataset.ready;
  const t0 = performance.now();
  document.querySelector(`#nav button[data-page="${name}"]`).click();
  while (main.dataset.ready !== name) await new Promise((r) => setTimeout(r, 2));
  return performance.now() - t0;
}"""


def add_console_user(rig: LessonRig, name: str, role: str, password: str) -> None:
    """A console user in the rig's state directory, via the controller CLI."""
    out = subprocess.run(
        [
            str(BIN / "classroom-controller"),
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--state-dir",
            str(rig.controller_state),
        ],
        input=password + "\n",
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"classroom-controller user add {name} failed:\n{out.stderr}")


async def sign_in(page: Any, base: str, user: str, password: str) -> None:
    """Open the console and sign in; returns once the dashboard is rendered."""
    await page.goto(base + "/")
    await page.wait_for_selector("body[data-ready='1']")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#sign-in-button")
    await page.wait_for_selector("#page[data-ready='dashboard']")


async def open_nav_page(page: Any, name: str) -> float:
    """Click the console's nav button ``name``; ms until that page's data is rendered."""
    return float(await page.evaluate(NAV_JS, name))


async def first_frame_ms(page: Any, lesson_id: str, timeout_s: float = 10.0) -> float:
    """Click the lesson's patrol tile; ms from the click to the first decoded video frame
    of the big view (framesDecoded > 0 in getStats, polled every 50 ms)."""
    tile = page.locator(f".patrol-tile[data-lesson='{lesson_id}']")
    await tile.wait_for()
    t0 = await page.evaluate("performance.now()")
    await tile.click()
    ms = float(await page.evaluate(FIRST_FRAME_JS, [t0, timeout_s * 1000]))
    if ms < 0:
        raise RuntimeError(
            f"no decoded frame within {timeout_s:g} s of clicking lesson {lesson_id}'s tile"
        )
    return ms


async def frames_decoded(page: Any) -> dict[str, Any]:
    """The big view's lead camera: framesDecoded and the codec's MIME type."""
    result: dict[str, Any] = await page.evaluate(FRAMES_DECODED_JS)
    return result


# The console pages the benchmarks time, in the order they are opened.
PAGES = ("dashboard", "patrol", "audit", "timetable")


class ConsoleClicker:
    """A signed-in headless Chromium on a rig's console that opens its pages in turn."""

    def __init__(self, rig: LessonRig, user: str, password: str) -> None:
        self.rig, self.user, self.password = rig, user, password
        self._pw: Any = None
        self._browser: Any = None
        self.page: Any = None
        self.names: list[str] = []

    async def start(self) -> None:
        """Launch, sign in, and open each page once (modules loaded, caches warm)."""
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=rig_chromium_args(self.rig)
        )
        self.page = await self._browser.new_page()
        self.page.set_default_timeout(30_000)
        await sign_in(self.page, self.rig.base, self.user, self.password)
        self.names = [
            n for n in PAGES if await self.page.locator(f"#nav button[data-page='{n}']").count()
        ]
        for name in self.names:
            await open_nav_page(self.page, name)

    async def loop(self, stop: asyncio.Event) -> dict[str, list[float]]:
        """Open the pages in turn until ``stop``; each page's times in ms."""
        times: dict[str, list[float]] = {n: [] for n in self.names}
        while not stop.is_set():
            for name in self.names:
                times[name].append(await open_nav_page(self.page, name))
                if stop.is_set():
                    break
        return times

    async def stop(self) -> None:
        """Close the browser."""
        if self._browser is not None:
            await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()
