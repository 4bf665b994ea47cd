"""Debian's Janus as a reference SFU on loopback: server process and VideoRoom client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pathlib
import random
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from benchlib.ports import free_port_pair

PLUGINS = pathlib.Path("/usr/lib/x86_64-linux-gnu/janus/plugins")
TRANSPORTS = pathlib.Path("/usr/lib/x86_64-linux-gnu/janus/transports")


class JanusError(RuntimeError):
    """Janus refused a request or did not start."""


_SERIAL = itertools.count()


def _addresses_in_use() -> str:
    """This host's IPv4 addresses, as ``ip -o -4 addr`` prints them."""
    return subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout


class JanusServer:
    """A private Janus with only the VideoRoom plugin and the HTTP transport.

    libnice never gathers loopback candidates, so Janus runs in a network namespace the
    bench makes itself, joined to this host by a veth pair: ``host_address`` on our side,
    ``address`` on Janus's side. No traffic leaves the machine. Several may run at once
    (each has its own namespace and /30). With ``admin_secret`` the admin API listens too,
    at ``admin_url``, and asks for that secret.
    """

    def __init__(self, admin_secret: str | None = None, conncheck: bool = True) -> None:
        # Consent checks on (the deployment's setting, see controller.media_plane.startup):
        # Janus hangs up a peer that stopped answering them.
        self.conncheck = conncheck
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="classbridge-janus-"))
        self.port = free_port_pair()
        self.admin_port = self.port + 1
        self.admin_secret = admin_secret
        self.proc: subprocess.Popen[bytes] | None = None
        serial = next(_SERIAL)
        self.netns = f"cbjanus{os.getpid()}-{serial}"
        # Interface names are at most 15 characters; the peer adds an "n".
        self._veth = f"cbj{random.getrandbits(32):08x}"
        used = _addresses_in_use()
        for _ in range(100):
            a, b = random.randint(1, 250), random.randint(0, 63)
            if f"10.77.{a}.{4 * b + 1}/" not in used:
                break
        self.host_address = f"10.77.{a}.{4 * b + 1}"
        self.address = f"10.77.{a}.{4 * b + 2}"

    @property
    def url(self) -> str:
        """The Janus HTTP API endpoint."""
        return f"http://{self.address}:{self.port}/janus"

    @property
    def admin_url(self) -> str:
        """The Janus admin API endpoint (listening only with an ``admin_secret``)."""
        return f"http://{self.address}:{self.admin_port}/admin"

    def _make_netns(self) -> None:
        inner = self._veth + "n"
        steps = [
            ["ip", "netns", "add", self.netns],
            ["ip", "link", "add", self._veth, "type", "veth", "peer", "name", inner],
            ["ip", "link", "set", inner, "netns", self.netns],
            ["ip", "addr", "add", f"{self.host_address}/30", "dev", self._veth],
            ["ip", "link", "set", self._veth, "up"],
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "ip",
                "addr",
                "add",
                f"{self.address}/30",
                "dev",
                inner,
            ],
            ["ip", "netns", "exec", self.netns, "ip", "link", "set", inner, "up"],
            ["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            out = subprocess.run(step, capture_output=True, text=True)
            if out.returncode != 0:
                self._drop_netns()
                raise JanusError(
                    f"cannot build the Janus network namespace ({' '.join(step)}: "
                    f"{out.stderr.strip()}); the Janus reference needs root"
                )

    def _drop_netns(self) -> None:
        subprocess.run(["ip", "link", "del", self._veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    @property
    def pid(self) -> int:
        """Process id, for CPU accounting."""
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        """Write the configuration, start janus and wait for its API."""
        if shutil.which("janus") is None:
            raise JanusError("janus is not installed; run scripts/bootstrap janus")
        d = self.dir
        admin_general = ""
        admin_http = "admin_http = false"
        if self.admin_secret is not None:
            admin_general = f'    admin_secret = "{self.admin_secret}"\n'
            admin_http = (
                f"admin_http = true\n    admin_port = {self.admin_port}\n"
                f'    admin_ip = "{self.address}"\n    admin_base_path = "/admin"\n'
                "    admin_https = false"
            )
        for sub in ("cfg", "plugins", "transports", "events", "loggers"):
            (d / sub).mkdir()
        (d / "plugins" / "libjanus_videoroom.so").symlink_to(PLUGINS / "libjanus_videoroom.so")
        (d / "transports" / "libjanus_http.so").symlink_to(TRANSPORTS / "libjanus_http.so")
        (d / "cfg" / "janus.jcfg").write_text(f"""general: {{
    configs_folder = "{d}/cfg"
    plugins_folder = "{d}/plugins"
    transports_folder = "{d}/transports"
    events_folder = "{d}/events"
    loggers_folder = "{d}/loggers"
    debug_level = 3
{admin_general}}}
media: {{
    ipv6 = false
}}
nat: {{
    ice_enforce_list = "{self._veth}n"
    ignore_mdns = true
    ice_keepalive_conncheck = {"true" if self.conncheck else "false"}
}}
""")
        (d / "cfg" / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {self.port}
    ip = "{self.address}"
    https = false
}}
admin: {{
    {admin_http}
}}
""")
        (d / "cfg" / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
        self._make_netns()
        log = open(d / "janus.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "janus", "-F", str(d / "cfg")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.post(
                        self.url, json={"janus": "info", "transaction": "x"}
                    ) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
        tail = (d / "janus.log").read_text(errors="replace")[-2000:]
        await self.stop()
        raise JanusError(f"janus did not start:\n{tail}")

    def kill(self) -> None:
        """Kill janus at once, as a crash would (its namespace stays until ``stop``)."""
        if self.proc is not None and self.proc.poll() is None:
            # ``ip netns exec`` execs janus, so this pid is janus itself.
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def stop(self) -> None:
        """Stop janus and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._drop_netns()
        shutil.rmtree(self.dir, ignore_errors=True)


class JanusVideoRoom:
    """One Janus session with a VideoRoom handle per peer (publisher or subscriber)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http: aiohttp.ClientSession | None = None
        self._session: int | None = None
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Create the session and start the long-poll and keepalive loops."""
        self._http = aiohttp.ClientSession()
        data = await self._post(self.url, {"janus": "create"})
        self._session = data["data"]["id"]
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._keepalive())]

    async def stop(self) -> None:
        """Destroy the session."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            with contextlib.suppress(JanusError, aiohttp.ClientError):
                await self._post(f"{self.url}/{self._session}", {"janus": "destroy"})
            await self._http.close()

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        body = {"transaction": f"{random.getrandbits(48):x}", **body}
        async with self._http.post(url, json=body) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
        if data.get("janus") == "error":
            raise JanusError(f"{body.get('janus')} failed: {data['error']}")
        return data

    async def _poll(self) -> None:
        assert self._http is not None
        while True:
            async with self._http.get(f"{self.url}/{self._session}?maxev=10") as resp:
                data = await resp.json(content_type=None)
            for event in data if isinstance(data, list) else [data]:
                handle = event.get("sender")
                if handle in self._events:
                    self._events[handle].put_nowait(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(20)
            await self._post(f"{self.url}/{self._session}", {"janus": "keepalive"})

    async def _attach(self) -> int:
        data = await self._post(
            f"{self.url}/{self._session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        handle: int = data["data"]["id"]
        self._events[handle] = asyncio.Queue()
        return handle

    async def _message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> dict[str, Any]:
        tx = f"{random.getrandbits(48):x}"
        msg: dict[str, Any] = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            msg["jsep"] = jsep
        data = await self._post(f"{self.url}/{self._session}/{handle}", msg)
        if data.get("janus") == "success":
            plugin = data.get("plugindata", {}).get("data", {})
            if "error" in plugin:
                raise JanusError(f"{body.get('request')}: {plugin['error']}")
            return data
        while True:  # "ack": the answer arrives as an event
            event = await asyncio.wait_for(self._events[handle].get(), 15)
            # Only the answer to this request: a room's unsolicited news (a publisher
            # coming up, another leaving) has no transaction.
            if event.get("janus") == "event" and event.get("transaction") == tx:
                plugin = event.get("plugindata", {}).get("data", {})
                if "error" in plugin:
                    raise JanusError(f"{body.get('request')}: {plugin['error']}")
                return event

    async def create_room(self, room: int, bitrate_bps: int) -> None:
        """An H.264/Opus room with no recording."""
        handle = await self._attach()
        await self._message(
            handle,
            {
                "request": "create",
                "room": room,
                "publishers": 4,
                "bitrate": bitrate_bps,
                "videocodec": "h264",
                "audiocodec": "opus",
                "record": False,
                "h264_profile": "42e01f",
            },
        )

    async def join(self, room: int, display: str, pin: str | None = None) -> int:
        """Join as a publisher with no media yet (giving the room's PIN); the feed id."""
        handle = await self._attach()
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "publisher",
            "room": room,
            "display": display,
        }
        if pin is not None:
            body["pin"] = pin
        joined = await self._message(handle, body)
        feed: int = joined["plugindata"]["data"]["id"]
        return feed

    async def publish(
        self, room: int, pc: RTCPeerConnection, display: str, pin: str | None = None
    ) -> int:
        """Join as a publisher with ``pc``'s tracks (giving the room's PIN); the feed id."""
        handle = await self._attach()
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "publisher",
            "room": room,
            "display": display,
        }
        if pin is not None:
            body["pin"] = pin
        joined = await self._message(handle, body)
        feed: int = joined["plugindata"]["data"]["id"]
        await pc.setLocalDescription(await pc.createOffer())
        event = await self._message(
            handle,
            {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        await pc.setRemoteDescription(RTCSessionDescription(**event["jsep"]))
        return feed

    async def subscribe(
        self,
        room: int,
        feed: int,
        pc: RTCPeerConnection,
        pin: str | None = None,
        on_offer: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe ``pc`` to a publisher's feed; ``on_offer`` runs once Janus's offer is
        applied and before the answer (to tap the new receivers)."""
        handle = await self._attach()
        # A feed becomes subscribable only once the publisher's media is up.
        for attempt in range(50):
            try:
                body: dict[str, Any] = {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": room,
                    "streams": [{"feed": feed}],
                }
                if pin is not None:
                    body["pin"] = pin
                event = await self._message(handle, body)
                break
            except JanusError as err:
                if "No such feed" not in str(err) or attempt == 49:
                    raise
                await asyncio.sleep(0.2)
        await pc.setRemoteDescription(RTCSessionDescription(**event["jsep"]))
        if on_offer is not None:
            on_offer()
        await pc.setLocalDescription(await pc.createAnswer())
        await self._message(
            handle,
            {"request": "start", "room": room},
            {"type": "answer", "sdp": pc.localDescription.sdp},
        )
