"""Patrol of a lesson carried by Janus, with real peers: a real Janus in a network
namespace, a controller and two synthetic agents publishing into the lesson's room, and
a headless Chromium that watches through Janus (the controller only signals).

Checked: the live list names the backend and the room's feeds with the agents' figures;
the browser decodes the lead's H.264 from Janus; watching is audited at its start and
end; a viewer outside the school scope is refused; a bad answer is refused with a 400 that
says what to do; and every way a viewer ends frees its Janus session (the admin API's
``list_sessions`` says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import psutil
import pytest
from benchlib.console_browser import (
    CHROMIUM,
    add_console_user,
    first_frame_ms,
    frames_decoded,
    open_nav_page,
    rig_chromium_args,
    sign_in,
)
from benchlib.janus import JanusServer
from benchlib.rig import LessonRig
from console.harness import PASSWORD, require_browser
from media_plane_fixtures import SECRET, instance, plane_config
from sqlalchemy import select

from controller.db.models import AuditEntry
from controller.db.session import database_url, make_engine, sessions
from controller.media_plane.janus_api import JanusClient

# Solo: real agents on a real Janus, timed to frames decoded; run in the second phase.
pytestmark = [pytest.mark.e2e, pytest.mark.janus, pytest.mark.solo, pytest.mark.timeout(360)]

require_browser()
from playwright.async_api import async_playwright  # noqa: E402

JANUS = pathlib.Path("/usr/bin/janus")
LEAD, RECEIVER = "city-1-101", "village-1-201"
TEACHER = {"classroom": LEAD, "track": "teacher", "kind": "video"}


@pytest.fixture
def live(tmp_path: pathlib.Path) -> Iterator[tuple[LessonRig, JanusServer, str, str]]:
    """A Janus, a controller placing lessons on it, two agents, an inspector who signs in,
    a Village School technician's API token, and a live lesson whose lead camera is in
    the room: (rig, janus, lesson id, technician's token)."""
    if not JANUS.exists():
        pytest.skip(f"{JANUS} is missing: install it with scripts/bootstrap janus")
    server = JanusServer(admin_secret=SECRET)
    asyncio.run(server.start())
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=2.0)
    try:
        # Janus answers only on its namespace's link (benchlib.janus): the agents pin ICE
        # to this side of it; the browser gathers it among its host candidates, named as
        # they are (CHROMIUM_ARGS turn mDNS names off), and reaches Janus over it.
        rig.media_addresses += [server.host_address]
        plane = tmp_path / "media-plane.toml"
        table = instance(server)
        plane.write_text(
            '[media_plane]\nbackend = "janus"\npoll_interval_s = 0.5\n'
            f'[janus.county-a]\napi_url = "{table["api_url"]}"\n'
            f'admin_url = "{table["admin_url"]}"\nadmin_secret = "{SECRET}"\ncapacity = 4\n'
        )
        plane.chmod(0o600)
        rig.controller_args = ["--media-plane", str(plane)]
        tokens = {
            LEAD: rig.add_classroom(LEAD, "City School"),
            RECEIVER: rig.add_classroom(RECEIVER, "Village School"),
        }
        add_console_user(rig, "inspector", "inspector", PASSWORD)
        rig.start_controller()
        rig.controller_cli("user", "add", "tech-village", "--role", "technician", "--no-password")
        rig.controller_cli("user", "school", "tech-village", "Village School")
        tech = rig.controller_cli("token", "create", "tech-village").stdout.strip()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        lesson = rig.schedule(LEAD, [RECEIVER], 1.0, 120.0)

        def lead_camera_in_room() -> Any:
            for x in rig.get("/live"):
                if x["id"] == lesson["id"] and x["backend"] == "janus":
                    return any(
                        f["classroom"] == LEAD and f["track"] == "teacher" and f["fps"]
                        for f in x["feeds"]
                    )
            return False

        rig.wait("the lead camera in the Janus room, in /api/v1/live", lead_camera_in_room, 40)
        yield rig, server, lesson["id"], tech
    finally:
        rig.stop()
        asyncio.run(server.stop())


async def _sessions(server: JanusServer) -> set[int]:
    """The Janus sessions the instance holds now (its admin API)."""
    client = JanusClient(plane_config({"a": instance(server)}).instances[0], 3.0)
    await client.start()
    try:
        return set((await client.admin("list_sessions")).get("sessions") or [])
    finally:
        await client.stop()


async def _until(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.2)


def _audit(rig: LessonRig, action: str, viewer: str) -> dict[str, Any] | None:
    rows = rig.get("/audit?limit=200")
    return next((r for r in rows if r["action"] == action and viewer in r["target"]), None)


async def test_patrol_watches_a_lesson_on_janus_in_a_real_browser(
    live: tuple[LessonRig, JanusServer, str, str],
) -> None:
    rig, server, lesson_id, tech = live
    doc = next(x for x in rig.get("/live") if x["id"] == lesson_id)
    assert doc["backend"] == "janus" and doc["lead"] == LEAD
    feeds = {(f["classroom"], f["track"]): f for f in doc["feeds"]}
    assert {(LEAD, "teacher"), (LEAD, "mic"), (RECEIVER, "student")} <= set(feeds), doc
    teacher = feeds[(LEAD, "teacher")]
    # The publishing agent's heartbeat figures, on Janus as on the relay.
    assert teacher["kind"] == "video" and teacher["fps"] > 5, teacher
    assert teacher["bitrate_bps"] > 100_000, teacher
    assert "frames_in" in doc["unavailable"]

    # Loss and round trip from the agent's RTCP with Janus (its receiver reports), a few
    # seconds after the media is up.
    def lead_camera_qos() -> Any:
        lesson = next(x for x in rig.get("/live") if x["id"] == lesson_id)
        cam = next(f for f in lesson["feeds"] if (f["classroom"], f["track"]) == (LEAD, "teacher"))
        return cam if cam["rtt_ms"] is not None and cam["loss_pct"] is not None else None

    teacher = rig.wait("the lead camera's RTCP figures in /api/v1/live", lead_camera_qos, 15)
    print("the lead camera in /api/v1/live:", teacher)

    # The receiving room's heartbeat: what it receives of the lead's camera through Janus.
    def received() -> Any:
        [room] = [c for c in rig.get("/classrooms") if c["id"] == RECEIVER]
        media = (room.get("health") or {}).get("media") or []
        got = [m for m in media if (m["track"], m["direction"]) == (f"{LEAD}-teacher", "recv")]
        return got[0] if got and got[0]["fps"] and got[0]["loss_pct"] is not None else None

    recv = rig.wait("the receiver's figures of the lead camera", received, 15)
    print("the receiver's heartbeat:", recv)
    assert recv["fps"] > 5 and recv["bitrate_bps"] > 100_000, recv
    # So the lead camera has one subscriber in /api/v1/live: the receiving room.
    doc = next(x for x in rig.get("/live") if x["id"] == lesson_id)
    feeds = {(f["classroom"], f["track"]): f for f in doc["feeds"]}
    assert feeds[(LEAD, "teacher")]["subscribers"] == 1, feeds[(LEAD, "teacher")]
    assert "subscribers" in doc["unavailable"]
    agents = await _sessions(server)
    base = f"{rig.base}/api/v1/lessons/{lesson_id}/watch"
    ssl = rig.ssl_context()

    async with aiohttp.ClientSession(headers=rig.auth_headers) as http:
        # Janus makes the offer: an offer from the client is refused, saying how to watch.
        body = {"sdp": "v=0\r\n", "feeds": [TEACHER]}
        async with http.post(base, json=body, ssl=ssl) as r:
            assert r.status == 400 and "/answer" in (await r.json())["error"]
        async with http.post(base, json={"feeds": [{**TEACHER, "track": "board"}]}, ssl=ssl) as r:
            said = (await r.json())["error"]
            assert r.status == 400 and "not in the lesson's Janus room" in said, said
        # A bad answer: refused with a clear 400, and its subscription is gone from Janus.
        async with http.post(base, json={"feeds": [TEACHER]}, ssl=ssl) as r:
            assert r.status == 201, await r.text()
            offer = await r.json()
        assert offer["type"] == "offer" and offer["sdp"].startswith("v=0")
        viewer = offer["viewer"]
        assert len(await _sessions(server) - agents) == 1
        async with http.post(f"{base}/{viewer}/answer", json={"sdp": "hello"}, ssl=ssl) as r:
            said = (await r.json())["error"]
            assert r.status == 400 and "SDP answer" in said, said
        bogus = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 0\r\n"
        async with http.post(f"{base}/{viewer}/answer", json={"sdp": bogus}, ssl=ssl) as r:
            said = (await r.json())["error"]
            assert r.status == 400 and "Janus refused the answer" in said, said
            assert "new watch" in said
        assert await _sessions(server) == agents
        end = _audit(rig, "watch_end", viewer)
        assert end is not None and end["detail"]["ended_by"] == "bad answer", end
        # An opened viewer hung up by DELETE frees its Janus session.
        async with http.post(base, json={"feeds": [TEACHER]}, ssl=ssl) as r:
            viewer = (await r.json())["viewer"]
        async with http.delete(f"{base}/{viewer}", ssl=ssl) as r:
            assert r.status == 200, await r.text()
        assert await _sessions(server) == agents
        async with http.post(f"{base}/{viewer}/answer", json={"sdp": bogus}, ssl=ssl) as r:
            assert r.status == 404
    # Outside the school scope: the Village School technician may not watch the city lead.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tech}"}) as http:
        async with http.post(base, json={"feeds": [TEACHER]}, ssl=ssl) as r:
            said = (await r.json())["error"]
            assert r.status == 403 and "outside school 'Village School'" in said, said
        async with http.get(f"{rig.base}/api/v1/live", ssl=ssl) as r:
            [mine] = [x for x in await r.json() if x["id"] == lesson_id]
            assert {f["classroom"] for f in mine["feeds"]} == {RECEIVER}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=rig_chromium_args(rig)
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await sign_in(page, rig.base, "inspector", PASSWORD)
            await open_nav_page(page, "patrol")
            await page.locator(".patrol-tile video").first.wait_for()
            first_ms = await first_frame_ms(page, lesson_id, timeout_s=15)
            before = await frames_decoded(page)
            await asyncio.sleep(2.0)
            after = await frames_decoded(page)
            decoded = after["frames"] - before["frames"]
            print(
                f"through Janus: first frame {first_ms:.0f} ms after the click; "
                f"{decoded} frames decoded in 2 s (total {after['frames']})"
            )
            assert before["codec"] == "video/H264", before
            assert decoded >= 15, (before, after)
            assert await page.locator("#patrol-main").evaluate("v => v.videoWidth") > 0
            assert await page.locator("#patrol-view .side video").count() >= 1
            # The thumbnail and the big view: two viewers, each in Janus.
            watching = await _sessions(server) - agents
            assert len(watching) == 2, watching
            doc = next(x for x in rig.get("/live") if x["id"] == lesson_id)
            assert doc["viewers"] == 2
            # The browser closes the big view's PeerConnection without a word to the
            # controller: Janus hangs it up, and the controller ends the viewer.
            big_view = await page.evaluate("window.classbridgePatrol.view.viewer")
            await page.evaluate("window.classbridgePatrol.view.pc.close()")
            await _until("the big view's Janus session freed", _left(server, agents, 1), 20)
            # Leaving the page hangs the thumbnail up (DELETE).
            await page.goto("about:blank")
            await _until("the thumbnail's Janus session freed", _left(server, agents, 0), 20)
        finally:
            await browser.close()
    rows = rig.get("/audit?limit=200")
    opened = [r for r in rows if r["action"] == "watch" and r["username"] == "inspector"]
    ended = [r for r in rows if r["action"] == "watch_end" and r["username"] == "inspector"]
    assert len(opened) == 2 and len(ended) == 2, rows
    assert all(r["detail"]["backend"] == "janus" for r in opened + ended), rows
    assert all(r["detail"]["duration_s"] > 0 for r in ended), ended
    how = {r["detail"]["viewer"]: r["detail"]["ended_by"] for r in ended}
    assert how[big_view].startswith("Janus hung up"), how
    # Leaving the page closes the thumbnail's PeerConnection and sends the DELETE: either
    # may reach the controller first.
    [thumb] = set(how) - {big_view}
    assert how[thumb] == "inspector" or how[thumb].startswith("Janus hung up"), how

    # A browser that vanishes (killed: no hang-up, no DTLS close): Janus's consent checks
    # go unanswered, it hangs both viewers up, and the controller ends them (65 s with
    # Debian's libnice 0.1.18: its keepalive checks time out slowly).
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=rig_chromium_args(rig)
        )
        page = await browser.new_page()
        page.set_default_timeout(15_000)
        await sign_in(page, rig.base, "inspector", PASSWORD)
        await open_nav_page(page, "patrol")
        await first_frame_ms(page, lesson_id, timeout_s=15)
        lost = await page.evaluate("window.classbridgePatrol.view.viewer")
        assert len(await _sessions(server) - agents) == 2
        killed = _kill_browsers()
        t0 = time.monotonic()
        await _until("the vanished browser's viewers ended", _left(server, agents, 0), 100)
        print(f"a killed browser's viewers ended {time.monotonic() - t0:.1f} s after ({killed})")
    rows = rig.get("/audit?limit=200")
    lost_end = next(r for r in rows if r["action"] == "watch_end" and lost in r["target"])
    assert lost_end["detail"]["ended_by"].startswith("Janus hung up"), lost_end

    # The controller stops with a viewer open: it hangs the viewer up, freeing its Janus
    # session, and writes its watch_end before it goes (its exit may then wait for the
    # agents' uploads in flight, so the test does not wait for it).
    async with (
        aiohttp.ClientSession(headers=rig.auth_headers) as http,
        http.post(base, json={"feeds": [TEACHER]}, ssl=ssl) as r,
    ):
        last = (await r.json())["viewer"]
    assert len(await _sessions(server) - agents) == 1
    os.killpg(rig.procs["controller"].pid, signal.SIGTERM)
    await _until("the last viewer's Janus session freed", _left(server, agents, 0), 15)
    db = sessions(make_engine(database_url(rig.controller_state)))

    async def last_end() -> Any:
        with db() as s:
            ends = s.scalars(select(AuditEntry).where(AuditEntry.action == "watch_end")).all()
            return next((e.detail for e in ends if e.detail.get("viewer") == last), None)

    end = await _until("the last viewer's watch_end", last_end, 15)
    assert end["ended_by"] == "the controller stopped", end


def _kill_browsers() -> int:
    """SIGKILL every Chromium process this test started; how many."""
    found = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
    for p in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    assert found, "no Chromium process to kill"
    return len(found)


def _left(server: JanusServer, agents: set[int], viewers: int) -> Any:
    async def check() -> bool:
        return len(await _sessions(server) - agents) == viewers

    return check
