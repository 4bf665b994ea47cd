"""A PTZ head for tests: a real UDP VISCA over IP responder.

It speaks the protocol on its own (it does not import the agent's VISCA code), so a test
against it checks the agent's framing against a second, independent reading of it.

    with ViscaResponder() as head:          # binds 127.0.0.1 on an ephemeral port
        ...  # point a ViscaClient at ("127.0.0.1", head.port)
        assert head.recalled == [3]

Commands get an acknowledgement ``90 41 FF`` and then a completion ``90 51 FF``, carrying
the sequence number they came with, as payload type 0x0111. The power inquiry is answered
``90 50 02 FF`` (on). Preset recalls and stores are recorded in ``recalled`` and
``stored``; every sequence number received, in ``sequences``. Set ``error_code`` to answer
commands with that VISCA error instead, ``silent`` to drop everything (a camera that is
off or unreachable), or ``want_reset`` to answer every request with the control reply
"abnormality in the sequence number" (``0F 01``) until it is sent a sequence-number reset.
All may be changed while it runs.

As a script, for trying a client by hand:

    .venv/bin/python tests/peers/visca_responder.py --port 52381 [--error 0x41] [--silent]
"""

from __future__ import annotations

import argparse
import signal
import socket
import struct
import sys
import threading
from types import TracebackType

HEADER = struct.Struct(">HHI")
VISCA_COMMAND = 0x0100
VISCA_INQUIRY = 0x0110
VISCA_REPLY = 0x0111
CONTROL_COMMAND = 0x0200
CONTROL_REPLY = 0x0201

ACK = bytes.fromhex("9041FF")
COMPLETION = bytes.fromhex("9051FF")
POWER_INQUIRY = bytes.fromhex("81090400FF")
POWER_ON_REPLY = bytes.fromhex("905002FF")
POWER_STANDBY_REPLY = bytes.fromhex("905003FF")
SYNTAX_ERROR = bytes.fromhex("906002FF")

# Errors a camera sends instead of the acknowledgement (socket 0), and those it sends
# after acknowledging the command (in the command's socket).
ERRORS_BEFORE_ACK = frozenset({0x02, 0x03})


class ViscaResponder:
    """A VISCA over IP camera on 127.0.0.1, answering from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        error_code: int | None = None,
        silent: bool = False,
        powered: bool = True,
        want_reset: bool = False,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.error_code = error_code
        self.silent = silent
        self.powered = powered
        self.want_reset = want_reset
        self.verbose = verbose
        self._lock = threading.Lock()
        self._recalled: list[int] = []
        self._stored: list[int] = []
        self._sequences: list[int] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what it has seen (copies, taken under the lock) --

    @property
    def recalled(self) -> list[int]:
        """Preset numbers recalled, in order."""
        with self._lock:
            return list(self._recalled)

    @property
    def stored(self) -> list[int]:
        """Preset numbers set (stored), in order."""
        with self._lock:
            return list(self._stored)

    @property
    def sequences(self) -> list[int]:
        """Sequence numbers of every well-formed datagram received, in order."""
        with self._lock:
            return list(self._sequences)

    # -- lifecycle --

    def start(self) -> ViscaResponder:
        """Bind and start answering; ``port`` is the bound port afterwards."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.port))
        sock.settimeout(0.05)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="visca-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ViscaResponder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the camera --

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return  # socket closed
            for payload_type, payload in self._answer(data):
                sequence = HEADER.unpack_from(data)[2]
                self._log(f"-> {payload_type:04x} seq={sequence} {payload.hex(' ')}")
                try:
                    sock.sendto(HEADER.pack(payload_type, len(payload), sequence) + payload, addr)
                except OSError:
                    break  # the client went away; a camera would not care either

    def _answer(self, data: bytes) -> list[tuple[int, bytes]]:
        """The (payload type, payload) replies to one datagram, in order."""
        if len(data) < HEADER.size + 1:
            return []
        payload_type, length, sequence = HEADER.unpack_from(data)
        payload = data[HEADER.size :]
        if length != len(payload):
            return []
        with self._lock:
            self._sequences.append(sequence)
        self._log(f"<- {payload_type:04x} seq={sequence} {payload.hex(' ')}")
        if self.silent:
            return []
        if payload_type == CONTROL_COMMAND:
            if payload != b"\x01":
                return [(CONTROL_REPLY, b"\x0f\x02")]  # abnormality in the message type
            self.want_reset = False
            return [(CONTROL_REPLY, b"\x01")]
        if self.want_reset:
            return [(CONTROL_REPLY, b"\x0f\x01")]  # abnormality in the sequence number
        if payload_type == VISCA_INQUIRY:
            if payload == POWER_INQUIRY:
                return [(VISCA_REPLY, POWER_ON_REPLY if self.powered else POWER_STANDBY_REPLY)]
            return [(VISCA_REPLY, SYNTAX_ERROR)]
        if payload_type != VISCA_COMMAND or payload[-1:] != b"\xff":
            return []
        code = self.error_code
        if code is not None:
            if code in ERRORS_BEFORE_ACK:
                return [(VISCA_REPLY, bytes((0x90, 0x60, code, 0xFF)))]
            return [(VISCA_REPLY, ACK), (VISCA_REPLY, bytes((0x90, 0x61, code, 0xFF)))]
        if len(payload) == 7 and payload[:4] == bytes.fromhex("8101043F"):
            action, preset = payload[4], payload[5]
            with self._lock:
                if action == 0x02:
                    self._recalled.append(preset)
                elif action == 0x01:
                    self._stored.append(preset)
        return [(VISCA_REPLY, ACK), (VISCA_REPLY, COMPLETION)]

    def _log(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=52381)
    parser.add_argument("--error", type=lambda v: int(v, 0), default=None, metavar="CODE")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()
    responder = ViscaResponder(
        args.host, args.port, error_code=args.error, silent=args.silent, verbose=True
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with responder:
        print(f"READY visca://{args.host}:{responder.port}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
