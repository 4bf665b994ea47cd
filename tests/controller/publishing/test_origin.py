"""The HLS origin's own rules on a real nginx: intranet links admit only their networks,
the gate refuses what is not a lesson's key, and bad settings are named at start-up."""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import signal

import aiohttp
import pytest
from helpers import needs

from controller.publishing import links
from controller.publishing.gate import PublishGate
from controller.publishing.origin import HlsOrigin, OriginConfig, render, why_unavailable
from controller.publishing.service import OriginKeeper, PublishingOptions, load_or_create_secret
from tests.peers.nginx_rtmp import free_port

SECRET = secrets.token_hex(16)


def test_bad_settings_are_named() -> None:
    for kwargs, words in [
        ({"http_listen": "8088"}, "http_listen '8088': write HOST:PORT"),
        ({"rtmp_listen": "host:99999"}, "rtmp_listen"),
        ({"intranet_networks": ("10.0.0.0/33",)}, "intranet network '10.0.0.0/33'"),
        ({"fragment_s": 5.0, "playlist_s": 6.0}, "at least two fragments"),
    ]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(")):
            OriginConfig(directory=pathlib.Path("/x"), secret=SECRET, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 to 128 lowercase hex"):
        OriginConfig(directory=pathlib.Path("/x"), secret="short; include /etc/passwd")
    with pytest.raises(ValueError, match="http_listen"):
        PublishingOptions(http_listen="nowhere")


def test_the_secret_is_made_once_and_kept_owner_only(tmp_path: pathlib.Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first and len(first) == 64
    assert (tmp_path / "hls-origin.key").stat().st_mode & 0o077 == 0


def test_lesson_ids_that_cannot_name_a_path_are_refused() -> None:
    for bad in ("../etc", ".hidden", "a/b", "", "x" * 81, "课"):
        with pytest.raises(ValueError, match="cannot be published"):
            links.public_path(SECRET, bad, 1)
    assert not links.key_matches(SECRET, "../etc", links.stream_key(SECRET, "etc"))
    assert links.key_matches(SECRET, "L-1", links.stream_key(SECRET, "L-1"))
    assert not links.key_matches(SECRET, "L-2", links.stream_key(SECRET, "L-1"))


@needs(why_unavailable() is None, why_unavailable() or "")
async def test_intranet_links_admit_only_their_networks(tmp_path: pathlib.Path) -> None:
    port = free_port()
    config = OriginConfig(
        directory=tmp_path / "origin",
        secret=SECRET,
        rtmp_listen=f"127.0.0.1:{free_port()}",
        http_listen=f"127.0.0.1:{port}",
        intranet_networks=("10.0.0.0/8",),  # loopback is not in it
    )
    assert "allow 10.0.0.0/8;" in render(config, 1)
    (config.hls_dir / "L-1").mkdir(parents=True)
    (config.hls_dir / "L-1" / "index.m3u8").write_text("#EXTM3U\n")
    gate = PublishGate(SECRET, lambda lesson: True)
    await gate.start()
    origin = HlsOrigin(config)
    try:
        origin.start(gate.port)
        signed = links.public_path(SECRET, "L-1", 2_000_000_000)
        async with aiohttp.ClientSession() as http:
            for path, want in [
                (f"{signed}index.m3u8", 200),
                ("/lan/L-1/index.m3u8", 403),
                ("/lan/L-1/", 403),
                (f"{signed}../../etc/passwd", 404),
                ("/player/hls.light.min.js", 200),
            ]:
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.status == want, (path, r.status)
            async with http.post(f"http://127.0.0.1:{port}{signed}index.m3u8") as r:
                assert r.status == 405
            # The gate: nginx's form, a wrong key, and a body that is not a form.
            gate_url = f"http://127.0.0.1:{gate.port}/on-publish"
            form = {"call": "publish", "name": "L-1", "addr": "10.1.2.3"}
            async with http.post(gate_url, data={**form, "key": "nope"}) as r:
                assert r.status == 403
            key = links.stream_key(SECRET, "L-1")
            async with http.post(gate_url, data={**form, "key": key}) as r:
                assert r.status == 200
            async with http.post(gate_url, data={**form, "key": "k" * 5000}) as r:
                assert r.status == 400  # past the gate's 4 kB: not nginx's form
            async with http.post(gate_url, data=b"\x00" * 100) as r:
                assert r.status == 403  # no key at all
        assert (gate.accepted, gate.refused) == (1, 3)
    finally:
        origin.stop()
        await gate.stop()


@needs(why_unavailable() is None, why_unavailable() or "")
async def test_nginx_is_restarted_when_it_dies(tmp_path: pathlib.Path) -> None:
    port = free_port()
    config = OriginConfig(
        directory=tmp_path / "origin",
        secret=SECRET,
        rtmp_listen=f"127.0.0.1:{free_port()}",
        http_listen=f"127.0.0.1:{port}",
    )
    origin = HlsOrigin(config)
    origin.start(1)
    keeper = OriginKeeper(origin, 1, every_s=0.1)
    keeper.start()
    try:
        first = origin.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if keeper.restarts:
                break
            await asyncio.sleep(0.05)
        assert keeper.restarts == 1 and origin.pid != first
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as r,
        ):
            assert r.status == 200
    finally:
        await keeper.stop()
        origin.stop()
