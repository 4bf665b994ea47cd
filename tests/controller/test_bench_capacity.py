"""bench-capacity's light load generator: its stamp survives the built-in relay's
re-packetisation, and one lesson through the real relay process is counted as delivered
(and a lesson whose sender is silent is counted as not delivered); the console figure's
whole controller carries a lesson on its own relay while Chromium opens its pages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.codecs.h264 import H264Encoder
from bench_capacity import console_saturated, lesson_figures, page_figures, run_load
from benchlib.capacity_backends import LEAD, RECEIVER, Builtin, Gen
from benchlib.clip import StreamShape, encode, encode_video, read_stamp, stamp_payload
from benchlib.loadgen import Tally
from console.harness import require_browser


def test_the_stamp_is_read_from_single_nal_and_stap_a_packets_alike() -> None:
    clip = encode_video(StreamShape("cam", "video", 320, 180, 10, 200_000), seconds=1.0)
    stamp = stamp_payload(7, 123456, 98765432123)
    assert read_stamp(stamp) == (7, 123456, 98765432123)
    # The relay re-assembles the frame (Annex B) and packetises it again: the stamp and
    # the other small NAL units (SPS, PPS) are aggregated into one STAP-A.
    sps, pps, idr = b"\x67" + b"\x42" * 12, b"\x68" + b"\xce" * 4, b"\x65" + b"\x11" * 3000
    frame = b"".join(b"\x00\x00\x00\x01" + nal for nal in (stamp, sps, pps, idr))
    payloads = H264Encoder._packetize(H264Encoder._split_bitstream(frame))
    carrying = [p for p in payloads if read_stamp(p) is not None]
    assert len(carrying) == 1 and carrying[0][0] & 0x1F == 24, [p[:1].hex() for p in payloads]
    assert read_stamp(carrying[0]) == (7, 123456, 98765432123)
    # No frame of the clip carries a stamp of its own, and a broken one is not read.
    assert all(read_stamp(p) is None for f in clip.frames for p in f.payloads)
    assert read_stamp(stamp[:20] + b"zz" + stamp[22:]) is None


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_one_lesson_through_the_relay_process_is_delivered_and_a_silent_one_is_not() -> None:
    async def go() -> tuple[dict[str, object], dict[str, object]]:
        shapes = [(True, s) for s in LEAD] + [(False, s) for s in RECEIVER]
        small = {
            (lead, s.name): encode_video(StreamShape(s.name, "video", 320, 180, s.fps, 300_000))
            if s.kind == "video"
            else encode(s)
            for lead, s in shapes
        }
        gen = Gen(small, Tally())
        backend = Builtin(gen)
        await backend.start()
        try:
            loaded = await run_load(backend, gen, 1, 3.0)
            # A lesson whose lead never sends: every stream of the lead is undelivered.
            gen.tally = Tally()
            lesson = await backend.open(0)
            for sender in lesson.lead.senders:
                await sender.stop()
            await asyncio.sleep(1.0)
            s0, r0 = gen.tally.snapshot()
            gen.tally.sent.update({sid: gen.tally.sent.get(sid, 0) + 30 for sid in lesson.lead.ids})
            s1, r1 = gen.tally.snapshot()
            silent = lesson_figures(lesson, gen.tally, s0, r0, s1, r1)
            await backend.close(lesson)
        finally:
            await backend.stop()
        return loaded, silent

    loaded, silent = asyncio.run(go())
    assert float(loaded["delivery_worst"]) >= 0.9, loaded  # type: ignore[arg-type]
    assert loaded["p95_ms_worst"] is not None, loaded
    assert float(loaded["media_cpu_pct"]) > 0, loaded  # type: ignore[arg-type]
    assert silent["delivery"] == 0.0, silent


def test_page_figures_take_every_page_opened_and_each_page_apart() -> None:
    times = {"dashboard": [100.0, 120.0, 400.0], "audit": [10.0, 12.0, 14.0]}
    figures = page_figures(times)
    assert figures["pages_opened"] == 6
    assert figures["page_max_ms"] == 400.0
    assert figures["page_p95_ms"] == 400.0
    assert figures["page_p95_ms_by_page"] == {"dashboard": 400.0, "audit": 14.0}


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_the_console_is_timed_in_chromium_on_a_whole_controller_carrying_the_lessons() -> None:
    """The console figure's rig: a whole controller (its term in the database) whose own
    relay process carries the lessons, and a signed-in Chromium opening its pages."""
    require_browser()  # skipped on a developer's machine without Chromium; fails in CI

    async def go() -> dict[str, Any]:
        small = {
            (lead, s.name): encode_video(StreamShape(s.name, "video", 320, 180, s.fps, 300_000))
            if s.kind == "video"
            else encode(s)
            for lead, shapes in ((True, LEAD), (False, RECEIVER))
            for s in shapes
        }
        return await console_saturated(Gen(small, Tally()), 1, 3.0, 400, 20)

    out = asyncio.run(go())
    assert out["term_lessons"] > 0, out
    load = out["load"]
    # The lesson went through the controller's relay process and arrived.
    assert load["delivery_worst"] >= 0.9, load
    assert load["media_cpu_pct"] > 0, load
    # The dashboard's API answered (authenticated, over HTTPS) throughout.
    assert load["controller_page_p95_ms"] < 5000, load
    for phase in ("idle", "saturated"):
        figures = out[phase]
        assert figures["pages_opened"] >= 4, (phase, figures)
        assert set(figures["page_p95_ms_by_page"]) >= {"dashboard", "timetable"}, figures
        assert 0 < figures["page_p95_ms"] < 10_000, figures
