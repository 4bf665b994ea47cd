"""An open lesson published as HLS (公开课直播) on a real controller and a real origin.

The controller runs its origin (Debian's nginx with the RTMP module); the synthetic
classroom's camera and microphone push to it exactly as the lead's agent does, with the
target the controller stored for the lead. The viewers' side: a signed link plays in
headless Chromium, the fragments carry the camera's own H.264 (its burned-in frame code
reads back), a forged or expired link is refused with 403, and a lesson unpublished or a
wrong stream key cannot publish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import av
import pytest
from console.floor_seed import floor_lesson
from console.harness import Console, require_browser
from helpers import needs
from sqlalchemy import select

from controller.app.daemon import ControllerConfig
from controller.db.models import AuditEntry
from controller.live_push.store import push_targets
from controller.publishing import links
from controller.publishing.origin import why_unavailable
from controller.publishing.service import SECRET_FILE, PublishingOptions
from controller.publishing.store import TARGET_NAME
from edge_agent.media import barcode
from edge_agent.media.rtmp_push import RtmpPush
from edge_agent.profile import load_profile
from edge_agent.sources import build_runner
from tests.peers.nginx_rtmp import free_port

require_browser()

pytestmark = [pytest.mark.e2e, needs(why_unavailable() is None, why_unavailable() or "")]

PROFILE = pathlib.Path(__file__).resolve().parents[2] / "hardware_profiles" / "synthetic.toml"
HTTP_PORT, RTMP_PORT = free_port(), free_port()
ORIGIN = f"http://127.0.0.1:{HTTP_PORT}"


@pytest.fixture
def controller_config(controller_config: ControllerConfig) -> ControllerConfig:
    """The console's controller, running an HLS origin on loopback."""
    return dataclasses.replace(
        controller_config,
        publishing=PublishingOptions(
            http_listen=f"127.0.0.1:{HTTP_PORT}", rtmp_listen=f"127.0.0.1:{RTMP_PORT}"
        ),
    )


@pytest.fixture
async def classroom() -> AsyncIterator[Callable[[str], RtmpPush]]:
    """The synthetic lead classroom's camera and microphone, and pushes of them."""
    loop = asyncio.get_running_loop()
    profile = load_profile(PROFILE).profile
    camera = build_runner(profile.device("teacher"), profile, loop)
    mic = build_runner(profile.device("mic"), profile, loop)
    pushes: list[RtmpPush] = []

    def push(url: str) -> RtmpPush:
        p = RtmpPush(
            url,
            camera.bus,
            mic.bus,
            width=camera.width,
            height=camera.height,
            fps=camera.fps,
            request_keyframe=camera.request_keyframe,
            backoff_cap_s=1.0,
        )
        pushes.append(p)
        return p

    camera.start()
    mic.start()
    try:
        yield push
    finally:
        for p in pushes:
            await p.stop()
        camera.stop()
        mic.stop()


async def _call(console: Console, method: str, role: str, lesson: str, **kw: Any) -> Any:
    url = f"{console.base}/api/v1/lessons/{lesson}/publish"
    async with (
        console.session(headers=console.bearer(role)) as http,
        http.request(method, url, **kw) as r,
    ):
        return r.status, await r.json()


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.read()


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        await asyncio.sleep(0.2)


def _first_code(segment: bytes) -> tuple[int, int] | None:
    """The burned-in (counter, capture ms) of a fragment's first readable frame."""
    with av.open(io.BytesIO(segment), mode="r", format="mpegts") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        for frame in container.decode(stream):
            code = barcode.read(frame.to_ndarray(format="gray"))
            if code is not None:
                return code
    return None


@pytest.mark.timeout(90)
async def test_a_published_lesson_plays_under_its_signed_link_and_nowhere_else(
    console: Console,
    classroom: Callable[[str], RtmpPush],
    controller_config: ControllerConfig,
) -> None:
    lesson = floor_lesson(console, state="live")
    secret = (controller_config.state_dir / SECRET_FILE).read_text().strip()

    # Only schedulers and admins publish; the body is checked and bounded.
    for role in ("teacher", "inspector", "technician"):
        status, doc = await _call(console, "POST", role, lesson, json={})
        assert status == 403, (role, doc)
    status, doc = await _call(console, "POST", "scheduler", lesson, json={"valid_hours": 0})
    assert status == 400 and "valid_hours 0" in doc["error"], doc
    status, doc = await _call(console, "POST", "scheduler", lesson, json={"hours": 2})
    assert status == 400 and "valid_hours" in doc["error"], doc
    status, doc = await _call(console, "POST", "scheduler", lesson, data=b" " * 2000)
    assert status == 413, doc
    status, doc = await _call(console, "POST", "scheduler", "no-such-lesson", json={})
    assert status == 404, doc

    status, doc = await _call(console, "POST", "scheduler", lesson, json={"valid_hours": 2})
    assert status == 200, doc
    assert doc["published"] is True and doc["push"]["name"] == TARGET_NAME
    public, intranet = doc["public_url"], doc["intranet_url"]
    assert public.startswith(f"{ORIGIN}/s/") and public.endswith(f"/{lesson}/")
    assert intranet == f"{ORIGIN}/lan/{lesson}/"
    assert abs(doc["expires_at"] - (time.time() + 7200)) < 60
    key = links.stream_key(secret, lesson)
    assert key not in str(doc), "the stream key never leaves the controller but to the lead"
    with console.db() as s:
        (target,) = push_targets(s, lesson)
        audited = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "POST /api/v1/lessons/{lesson}/publish")
        ).all()
    assert target.url == f"rtmp://127.0.0.1:{RTMP_PORT}/publish/{lesson}?key={key}"
    assert [a.username for a in audited] == ["scheduler"]

    # A publisher without the lesson's key is turned away by the controller's gate.
    intruder = classroom(f"rtmp://127.0.0.1:{RTMP_PORT}/publish/{lesson}?key={'0' * 40}")
    await intruder.start()
    # The lead pushes its camera's packets to the target the controller gave it.
    lead = classroom(target.url)
    await lead.start()

    async def playlist() -> bytes | None:
        status, body = await _get(public + "index.m3u8")
        return body if status == 200 and body.count(b".ts") >= 2 else None

    listed = await _until(playlist, 20, "two fragments in the signed playlist")
    assert lead.state == "live", lead.last_error
    assert intruder.state == "retrying" and intruder.packets == 0, intruder.status()
    first = next(ln for ln in listed.decode().splitlines() if ln.endswith(".ts"))
    status, segment = await _get(public + first)
    assert status == 200
    code = await asyncio.to_thread(_first_code, segment)
    assert code is not None, "the fragment lost the camera's burned-in frame code"
    assert time.time() * 1000 - code[1] < 30_000

    # The intranet link (loopback is inside the default private networks) plays too.
    status, body = await _get(intranet + "index.m3u8")
    assert status == 200 and b".ts" in body
    # Forged and expired links are refused on the page, the playlist and the fragments.
    sig = public.split("/")[4]
    bad_sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    expired = ORIGIN + links.public_path(secret, lesson, int(time.time()) - 1)
    other = public.replace(f"/{lesson}/", "/another-lesson/")
    for url in (public.replace(sig, bad_sig), expired, other):
        for leaf in ("", "index.m3u8", first):
            status, _ = await _get(url + leaf)
            assert status == 403, (url + leaf, status)
    assert (await _get(f"{ORIGIN}/hls/{lesson}/index.m3u8"))[0] == 404  # no back door

    # The watch page plays in a browser with no console account.
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        from console.harness import CHROMIUM

        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=console.chromium_args()
        )
        try:
            tab = await browser.new_page()
            await tab.goto(public)
            await tab.wait_for_selector("body[data-state='playing']", timeout=20_000)
            # Polled from here: the page's CSP forbids the eval wait_for_function needs.
            video = "() => {const v = document.getElementById('video'); "
            video += "return [v.currentTime, v.videoWidth, v.videoHeight];}"
            deadline = time.monotonic() + 15
            while (got := await tab.evaluate(video))[0] <= 1.0:
                assert time.monotonic() < deadline, f"the video does not advance: {got}"
                await asyncio.sleep(0.2)
            assert got[1:] == [1280, 720], got
            await tab.goto(expired)
            assert "403" in await tab.content()
        finally:
            await browser.close()

    # Unpublished: the push target is gone and the key no longer publishes.
    status, doc = await _call(console, "DELETE", "scheduler", lesson)
    assert status == 200 and doc["published"] is False, doc
    status, doc = await _call(console, "DELETE", "scheduler", lesson)
    assert status == 404 and "not published" in doc["error"], doc
    with console.db() as s:
        assert push_targets(s, lesson) == []
    await lead.stop()
    again = classroom(target.url)
    await again.start()
    await asyncio.sleep(2.5)
    assert again.state == "retrying" and again.packets == 0, again.status()


@pytest.mark.timeout(60)
async def test_a_scheduler_publishes_from_the_lessons_details(page: Any, console: Console) -> None:
    import console.test_timetable_browser as timetable
    from playwright.async_api import expect

    lesson = await timetable._seed_lesson(console, timetable._next_tuesday().replace(hour=10))
    await timetable._open_timetable_next_week(page, "scheduler")
    await page.locator(f"[data-lesson='{lesson}']").first.click()
    details = page.locator("#tt-dialog[data-mode='details']")
    panel = details.locator("#publish-panel")
    await expect(panel.locator("#publish-state")).to_have_attribute("data-published", "0")
    await panel.locator("#publish-hours").fill("0")
    await panel.locator("#publish-go").click()
    await expect(panel.locator("#publish-error")).to_contain_text("valid_hours 0")
    await panel.locator("#publish-hours").fill("2")
    await panel.locator("#publish-go").click()
    await expect(panel.locator("#publish-state")).to_have_attribute("data-published", "1")
    public = await panel.locator("#publish-public").get_attribute("href")
    assert public is not None and public.startswith(f"{ORIGIN}/s/"), public
    await expect(panel.locator("#publish-intranet")).to_have_text(f"{ORIGIN}/lan/{lesson}/")
    # The origin's target shows among the lesson's pushes, its key hidden.
    await expect(details.locator("#push-targets")).to_contain_text(TARGET_NAME)
    await expect(details.locator("#push-targets")).to_contain_text("/publish/***")
    assert (await _get(public))[0] == 200  # the watch page, before the lesson is live
    await panel.locator("#publish-stop").click()
    await expect(panel.locator("#publish-state")).to_have_attribute("data-published", "0")
    with console.db() as s:
        assert push_targets(s, lesson) == []
