"""A classroom agent of release 0.5 on the control plane, for the rolling-upgrade test.

Run with this folder first on ``sys.path``, so ``protocols`` is release 0.5's own package
(strict: it refuses any field or message type it does not know). Reads its keys and the
controller's address as JSON on stdin; registers, beats, answers every command with an
ack, and prints one JSON line per message the controller sent (type, or the error 0.5
raised decoding it). Ends after ``seconds``.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import zmq

from protocols import envelope
from protocols.messages import (
    CommandAck,
    DeviceInfo,
    Heartbeat,
    Register,
)


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    assert envelope.__file__ is not None and "release05" in envelope.__file__
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey = cfg["public_key"].encode()
    sock.curve_secretkey = cfg["secret_key"].encode()
    sock.curve_serverkey = cfg["controller_public_key"].encode()
    sock.linger = 0
    sock.connect(cfg["controller"])
    cid = cfg["classroom_id"]

    def send(body: object, correlation_id: str | None = None) -> None:
        sock.send(envelope.encode(envelope.make(body, cid, correlation_id)))  # type: ignore[arg-type]

    send(
        Register(
            classroom_id=cid,
            agent_version="0.5.0",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[
                DeviceInfo(
                    name="teacher",
                    kind="camera",
                    driver="synthetic",
                    role="teacher",
                    width=640,
                    height=360,
                    fps=15,
                ),
                DeviceInfo(name="mic", kind="microphone", driver="synthetic", role="room"),
            ],
        )
    )
    end = time.monotonic() + float(cfg["seconds"])
    seq = 0
    next_beat = 0.0
    while time.monotonic() < end:
        if time.monotonic() >= next_beat:
            seq += 1
            send(Heartbeat(seq=seq, cpu_pct=5, mem_pct=20, disk_free_bytes=10**11, disk_pct=10))
            next_beat = time.monotonic() + float(cfg["heartbeat_s"])
        if not sock.poll(50):
            continue
        data = sock.recv()
        try:
            env = envelope.decode(data)
        except ValueError as err:  # a ProtocolError: 0.5 logged and dropped it
            print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
            continue
        print(json.dumps({"type": env.type}), flush=True)
        if env.type.startswith("cmd."):
            send(CommandAck(command=env.type, ok=True), env.id)
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
