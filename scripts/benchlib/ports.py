"""Free loopback ports for benchmark and demo processes."""

from __future__ import annotations

import pathlib
import random
import socket


def free_port_pair() -> int:
    """A port p such that p and p+1 are both free on loopback."""
    # Below the kernel's ephemeral range (32768 and up by default): a port from inside it
    # can be handed to some process's outgoing connection between this check and the
    # bind, which once failed a controller's start with "address already in use".
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randint(20000, max(20001, min(low, 45000) - 2))
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port pair")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999
