"""A published lesson on real processes: the controller runs its HLS origin, the lead
classroom's agent gets the origin as one of its push targets when the lesson starts and
pushes its director's programme there; viewers fetch it under the signed link."""

from __future__ import annotations

import io
import json
import pathlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import av
import pytest
from benchlib.rig import LessonRig
from helpers import needs

from controller.publishing.origin import why_unavailable
from edge_agent.media import barcode
from tests.peers.nginx_rtmp import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(150),
    needs(why_unavailable() is None, why_unavailable() or ""),
]
LEAD, RECEIVER = "city-1-101", "village-1-201"


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[LessonRig]:
    """A controller with an HLS origin, and two enrolled, running synthetic agents."""
    rig = LessonRig(tmp_path / "rig", heartbeat_s=0.5, prepare_s=3.0)
    rig.controller_args = [
        "--hls-origin",
        f"127.0.0.1:{free_port()}",
        "--hls-rtmp",
        f"127.0.0.1:{free_port()}",
    ]
    try:
        tokens = {cid: rig.add_classroom(cid) for cid in (LEAD, RECEIVER)}
        rig.start_controller()
        for cid, token in tokens.items():
            rig.enrol_and_start_agent(cid, token)
        rig.wait_online([LEAD, RECEIVER])
        yield rig
    finally:
        rig.stop()


def _post(rig: LessonRig, path: str, doc: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        rig.api + path,
        data=json.dumps(doc).encode(),
        method="POST",
        headers={**rig.auth_headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10, context=rig.ssl_context()) as resp:
        return json.loads(resp.read())


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: bytes = resp.read()
        return data


def test_the_leads_programme_reaches_viewers_under_the_signed_link(rig: LessonRig) -> None:
    lesson = rig.schedule(LEAD, [RECEIVER], 5.0, 40.0)["id"]
    doc = _post(rig, f"/lessons/{lesson}/publish", {"valid_hours": 1})
    public = doc["public_url"]

    def fragments() -> list[str]:
        text = _fetch(public + "index.m3u8").decode()
        names = [ln for ln in text.splitlines() if ln.endswith(".ts")]
        return names if len(names) >= 2 else []

    try:
        names = rig.wait("two fragments in the published playlist", fragments, 60)
    except urllib.error.HTTPError as err:  # pragma: no cover - a refusal is the finding
        pytest.fail(f"the origin answered {err.code} for the signed playlist")
    segment = _fetch(public + names[-1])
    with av.open(io.BytesIO(segment), mode="r", format="mpegts") as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        codes = [barcode.read(f.to_ndarray(format="gray")) for f in container.decode(video)]
    read = [c for c in codes if c is not None]
    assert read, "the programme's fragment lost the teacher camera's frame code"
    assert time.time() * 1000 - read[-1][1] < 20_000, "the fragment is not live"
    # Everyone sees the lead's push to the origin as live, its key hidden.
    state = rig.get(f"/lessons/{lesson}/publish")
    assert state["published"] is True and state["push"]["state"] == "live", state
    assert state["push"]["where"].endswith("/publish/***")
    assert "key=" not in json.dumps(state)
