"""Free loopback ports for benchmark and demo processes."""

from __future__ import annotations

import random
import socket


def free_port_pair() -> int:
    """A port p such that p and p+1 are both free on loopback."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port pair")
