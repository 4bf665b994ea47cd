"""The shaping half of bench-media: a lead classroom's uplink cut to half its top rung.

The relay runs in a network namespace made for the run (``--relay-worker`` is that
process), reached over a veth pair; the lead's real session runs here with the agent's
own encoders and rate adapter. After a warm-up at the top rung, tc tbf shapes the veth
to half the top rung. Figures: seconds until the adapter settles on a lower rung for
good, the rung, and the longest hole in the audio the relay received after the cut.
Needs root (ip netns, tc); the namespace and link are removed at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from edge_agent.media.adaptation import rung_name  # noqa: E402
from protocols import envelope  # noqa: E402
from protocols.media import aiortc_seam  # noqa: E402
from protocols.messages import Body, SdpAnswer, SdpOffer, TrackMid  # noqa: E402
from protocols.network_profile import NetworkProfile  # noqa: E402

HOST_IP, NS_IP = "10.203.0.1", "10.203.0.2"
WARMUP_S = 8.0
WINDOW_S = 20.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Namespace:
    """A namespace with a veth pair to it; the relay lives inside."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.name, self.host_if, self.ns_if = f"cbshape{tag}", f"cbh{tag}", f"cbn{tag}"

    def __enter__(self) -> Namespace:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        for args in (
            ("addr", "add", f"{NS_IP}/30", "dev", self.ns_if),
            ("link", "set", self.ns_if, "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip("netns", "exec", self.name, "ip", *args)
        return self

    def shape(self, kbps: int) -> None:
        """tbf on the lead's side: what the classroom sends towards the relay."""
        subprocess.run(
            [
                "tc", "qdisc", "replace", "dev", self.host_if, "root", "tbf",
                "rate", f"{kbps}kbit", "burst", "16kb", "latency", "300ms",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


async def relay_worker() -> None:
    """Inside the namespace: answer offers on stdin, note the audio the relay receives."""
    from controller.relay.feed import Feed
    from controller.relay.room import LessonRelay

    aiortc_seam.pin_host_addresses([NS_IP])
    arrivals: list[tuple[float, int]] = []
    original = Feed.publish

    def publish(self: Feed, data: bytes, pts: int) -> None:
        if self.kind == "audio":
            arrivals.append((time.monotonic(), pts))
        original(self, data, pts)

    Feed.publish = publish  # type: ignore[method-assign]
    relay = LessonRelay("bench-shaping")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        doc = json.loads(line)
        if doc["op"] == "offer":
            tracks = [TrackMid.model_validate(t) for t in doc["tracks"]]
            sdp = await relay.answer(doc["classroom"], doc["sdp"], tracks)
            reply: dict[str, Any] = {"sdp": sdp}
        else:
            reply = {"arrivals": arrivals}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if doc["op"] == "quit":
            break
    await relay.close()


class WorkerLink:
    """Talks to the relay worker over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lock = asyncio.Lock()

    async def call(self, doc: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self.lock:
            self.proc.stdin.write((json.dumps(doc) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the relay worker died; run with the namespace by hand to see why")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def request(self, body: Body, timeout: float) -> envelope.Envelope:
        assert isinstance(body, SdpOffer)
        reply = await self.call(
            {
                "op": "offer",
                "classroom": "city-1-101",
                "sdp": body.sdp,
                "tracks": [t.model_dump(mode="json") for t in body.tracks],
            }
        )
        return envelope.make(SdpAnswer(lesson_id=body.lesson_id, sdp=reply["sdp"]), "relay")


async def _run(ns: Namespace, ladder: NetworkProfile) -> dict[str, Any]:
    from bench_media import lead_session, sources

    aiortc_seam.pin_host_addresses([HOST_IP])
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, sys.executable, __file__, "--relay-worker",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    link = WorkerLink(proc)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-shaping-"))
    srcs = sources(["teacher", "mic"], asyncio.get_running_loop())
    lead = lead_session("bench-shaping", srcs, link.request, tmp)
    try:
        await lead.connect()
        await asyncio.wait_for(lead.connected.wait(), 15)
        await asyncio.sleep(WARMUP_S)
        assert lead.adapter is not None
        teacher = lead.adapter.senders["teacher"]
        top = teacher.levels[-1]
        shaped_kbps = ladder.ladder[0].kbps // 2
        ns.shape(shaped_kbps)
        cut = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        # Settled: from the first moment after which every level the teacher camera is
        # given (plus the microphone) fits under the shaped rate, to the end of the window.
        final = teacher.current
        fits = (shaped_kbps - ladder.audio_kbps) * 1000
        changes = [(t, bps) for t, name, bps in lead.adapter.history if name == "teacher"]
        after = [(t - cut, bps) for t, bps in changes if t >= cut]
        settled: float | None = None
        if final < top and final <= fits:
            last_bad = max((i for i, (_, bps) in enumerate(after) if bps > fits), default=-1)
            if last_bad + 1 < len(after):
                settled = after[last_bad + 1][0]
        arrivals = (await link.call({"op": "quit"}))["arrivals"]
        pts = [p for t, p in arrivals if t >= cut]
        holes = [(b - a) / 48.0 - 20.0 for a, b in itertools.pairwise(pts)]
        # How late the audio came through the shaped link: arrival against its own
        # timestamp, above the best case (the queue the cut built, and any wait at a hole).
        offsets = sorted(t - p / 48000.0 for t, p in arrivals if t >= cut)
        late_ms = (offsets[-1] - offsets[0]) * 1000 if offsets else 0.0
        return {
            "shaped_settle_s": None if settled is None else round(settled, 2),
            "shaped_kbps": shaped_kbps,
            "shaped_rung": rung_name(ladder, final),
            "shaped_final_kbps": final // 1000,
            "shaped_audio_gap_ms": round(max(max(holes, default=0.0), 0.0), 1),
            "shaped_audio_late_ms": round(late_ms, 1),
            "shaped_changes": [
                (round(t - cut, 2), bps // 1000)
                for t, name, bps in lead.adapter.history
                if name == "teacher"
            ],
        }
    finally:
        await lead.close()
        for runner in srcs.values():
            runner.stop()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def shaping_bench(ladder: NetworkProfile) -> dict[str, Any]:
    """Run the shaping bench (root only); figures as a dict."""
    if os.geteuid() != 0 or shutil.which("tc") is None:
        return {"shaped_settle_s": None, "shaped_skipped": "needs root and tc (iproute2)"}
    with Namespace() as ns:
        return asyncio.run(_run(ns, ladder))


if __name__ == "__main__":
    if "--relay-worker" in sys.argv:
        asyncio.run(relay_worker())
    else:
        from bench_media import LADDER

        print(json.dumps(shaping_bench(LADDER)))
