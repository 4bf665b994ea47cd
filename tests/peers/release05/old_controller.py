"""A controller of release 0.5 on the control plane, for the rolling-upgrade test.

Run with this folder first on ``sys.path`` (release 0.5's strict ``protocols``). Reads its
CURVE keys and port as JSON on stdin; answers a registration with an ack and a heartbeat
with an ack, and what it cannot decode with an uncorrelated ``malformed`` error, as 0.5's
hub did. Prints one JSON line per message (type, or the error). Ends after ``seconds``.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import zmq

from protocols import envelope
from protocols.messages import ErrorReply, HeartbeatAck, RegisterAck


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    assert envelope.__file__ is not None and "release05" in envelope.__file__
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.curve_server = True
    sock.curve_publickey = cfg["public_key"].encode()
    sock.curve_secretkey = cfg["secret_key"].encode()
    sock.linger = 0
    sock.bind(f"tcp://127.0.0.1:{cfg['port']}")
    print(json.dumps({"listening": True}), flush=True)
    end = time.monotonic() + float(cfg["seconds"])
    while time.monotonic() < end:
        if not sock.poll(50):
            continue
        route, data = sock.recv_multipart()
        try:
            env = envelope.decode(data)
        except ValueError as err:  # a ProtocolError: 0.5 answered it, uncorrelated
            print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
            reply = envelope.make(ErrorReply(code="malformed", message=str(err)), "controller")
            sock.send_multipart([route, envelope.encode(reply)])
            continue
        print(json.dumps({"type": env.type}), flush=True)
        if env.type == "agent.register":
            body: object = RegisterAck(
                heartbeat_interval_s=0.3,
                upload_url="http://127.0.0.1:9/",
                upload_token="t" * 32,
                server_time=time.time(),
            )
        elif env.type == "agent.heartbeat":
            body = HeartbeatAck(seq=env.body.seq, server_time=time.time())  # type: ignore[attr-defined]
        else:
            continue
        reply = envelope.make(body, "controller", env.id)  # type: ignore[arg-type]
        sock.send_multipart([route, envelope.encode(reply)])
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
