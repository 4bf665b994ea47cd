"""The tc HTB shaper, applied for real to a veth inside a network namespace of the test."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from edge_agent.network.shaper import (
    ShaperError,
    ShaperState,
    apply_shaper,
    queue_bytes,
    read_shaper,
    remove_shaper,
    shaper_commands,
)

pytestmark = pytest.mark.timeout(30)
IFACE = "cbshape0"


PEER = "cbpeer0"
ADDR, PEER_ADDR = "10.254.77.1", "10.254.77.2"


@pytest.fixture
def netns() -> Iterator[str]:
    """Two fresh namespaces joined by a veth pair: ``cbshape0`` (ADDR) in the one yielded,
    ``cbpeer0`` (PEER_ADDR) in its ``-peer`` twin; both removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and a veth pair (ip netns add)")
    if shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("needs iproute2 (ip, tc)")
    name = f"cb-test-{secrets.token_hex(3)}"
    peer = f"{name}-peer"
    try:
        for ns in (name, peer):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(
            f"ip link add {IFACE} netns {name} type veth peer name {PEER} netns {peer}".split(),
            check=True,
        )
        for ns, dev, addr in ((name, IFACE, ADDR), (peer, PEER, PEER_ADDR)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        yield name
    finally:
        for ns in (name, peer):  # deleting a namespace deletes its veth end, and the pair
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def tc_in(ns: str) -> list[str]:
    return ["ip", "netns", "exec", ns, "tc"]


def tc_json(ns: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run([*tc_in(ns), "-j", *args], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def test_apply_read_back_update_and_remove(netns: str) -> None:
    state = apply_shaper(IFACE, 5000, tc_command=tc_in(netns))
    assert state.cap_kbps() == 5000 and state.leaf_kind == "bfifo"

    # Read back independently of the module.
    qdiscs = tc_json(netns, "qdisc", "show", "dev", IFACE)
    root = next(q for q in qdiscs if q.get("root"))
    assert (root["kind"], root["handle"]) == ("htb", "1:")
    assert root["options"]["default"] == "0x10"  # type: ignore[index]
    leaf = next(q for q in qdiscs if q.get("parent") == "1:10")
    assert leaf["options"] == {"limit": queue_bytes(5000)}
    classes = subprocess.run(
        [*tc_in(netns), "class", "show", "dev", IFACE], check=True, capture_output=True, text=True
    ).stdout
    assert "class htb 1:10 root" in classes and "rate 5Mbit ceil 5Mbit" in classes

    # Idempotent, and a new cap replaces the class in place.
    assert apply_shaper(IFACE, 5000, tc_command=tc_in(netns)) == state
    assert apply_shaper(IFACE, 600, tc_command=tc_in(netns)).cap_kbps() == 600

    assert remove_shaper(IFACE, tc_command=tc_in(netns)) is True
    assert remove_shaper(IFACE, tc_command=tc_in(netns)) is False
    assert not read_shaper(IFACE, tc_command=tc_in(netns)).ours


RECEIVE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5001)); s.settimeout(3); print("ready", flush=True)
s.recv(2048); start, got = time.monotonic(), 0
while time.monotonic() - start < 0.5:
    got += len(s.recv(2048))
print(got * 8 / 1000 / (time.monotonic() - start))
"""
SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, data = time.monotonic() + 0.7, bytes(1200)
while time.monotonic() < end:
    try:
        s.sendto(data, (sys.argv[1], 5001))
    except OSError:
        pass
"""


def measured_kbps(ns: str) -> float:
    """kbit/s that reach the peer namespace while ``ns`` sends UDP as fast as it can."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", f"{ns}-peer", sys.executable, "-c", RECEIVE, PEER_ADDR],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SEND, PEER_ADDR], check=True
        )
        return float(receiver.communicate(timeout=5)[0])
    finally:
        receiver.kill()
        receiver.wait()


def test_the_cap_holds_on_the_wire(netns: str) -> None:
    unshaped = measured_kbps(netns)
    apply_shaper(IFACE, 2000, tc_command=tc_in(netns))
    shaped = measured_kbps(netns)
    assert unshaped > 20_000, f"the veth itself carried only {unshaped:.0f} kbit/s"
    assert 1500 < shaped < 2300, f"{shaped:.0f} kbit/s through a 2000 kbit/s cap"


def test_replaces_a_foreign_root_with_the_same_handle(netns: str) -> None:
    tbf = f"qdisc add dev {IFACE} root handle 1: tbf rate 1mbit burst 10k latency 50ms"
    subprocess.run([*tc_in(netns), *tbf.split()], check=True)
    assert apply_shaper(IFACE, 8000, tc_command=tc_in(netns)).cap_kbps() == 8000


def test_permission_denied_says_cap_net_admin(netns: str) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop privileges")
    unprivileged = [
        *["ip", "netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534"],
        *["--clear-groups", "--inh-caps=-all", "tc"],
    ]
    with pytest.raises(ShaperError) as err:
        apply_shaper(IFACE, 5000, tc_command=unprivileged)
    message = str(err.value)
    assert "Operation not permitted" in message
    assert "needs CAP_NET_ADMIN" in message and "off by default" in message
    assert "shaper = false" in message


def test_unknown_interface(netns: str) -> None:
    with pytest.raises(ShaperError, match="there is no interface 'nosuch0'"):
        apply_shaper("nosuch0", 5000, tc_command=tc_in(netns))


def test_tc_missing() -> None:
    with pytest.raises(ShaperError, match=r"not found; install iproute2 \(apt-get"):
        apply_shaper("eth0", 5000, tc_command=("/nonexistent/tc",))


def test_commands() -> None:
    fresh = [" ".join(c) for c in shaper_commands("eth0.120", 5000)]
    assert fresh == [
        "qdisc replace dev eth0.120 root handle 1: htb default 10",
        "class replace dev eth0.120 parent 1: classid 1:10 htb rate 5000kbit ceil 5000kbit",
        "qdisc replace dev eth0.120 parent 1:10 handle 10: bfifo limit 125000",
    ]
    ours = ShaperState("htb", "1:", "1:10", {"1:10": (8000, 8000)}, "bfifo")
    assert [c[0] for c in shaper_commands("eth0", 5000, ours)] == ["class", "qdisc"]
    foreign = ShaperState("tbf", "1:")
    assert shaper_commands("eth0", 5000, foreign)[0] == ["qdisc", "del", "dev", "eth0", "root"]
    assert queue_bytes(100) == 16_000
    with pytest.raises(ValueError, match="must be positive"):
        shaper_commands("eth0", 0)
    with pytest.raises(ValueError, match="not an interface name"):
        shaper_commands("eth0 root", 5000)
