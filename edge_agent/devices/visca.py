"""Steering PTZ cameras to their presets with VISCA over IP.

Classroom PTZ cameras (Sony and the many cameras that copy its protocol) take VISCA
messages in UDP datagrams, by default on port 52381. VISCA itself is a serial protocol:
a message starts with an address byte (``0x81`` is "camera 1") and ends with ``0xFF``.
Over IP each VISCA message travels behind an eight-byte header:

    +---------------+----------------+--------------------------+------------------+
    | payload type  | payload length | sequence number          | payload          |
    | 2 bytes       | 2 bytes, BE    | 4 bytes, big-endian      | 1..16 bytes      |
    +---------------+----------------+--------------------------+------------------+

The payload type says what the payload is: a VISCA command (``0x0100``), a VISCA inquiry
(``0x0110``), the camera's reply to either (``0x0111``), a control command (``0x0200``)
or the reply to one (``0x0201``). The only control command used here is "reset the
sequence number" (payload ``0x01``). The camera echoes the sequence number of the message
it answers, which is how a reply is paired with the request that caused it, and how a
late reply to an earlier, given-up request is told apart from the current one.

A command is answered twice: first an acknowledgement, ``90 4y FF`` (the camera took it
into command socket ``y``), then, once the work is done (a preset recall may move the head
for a few seconds), a completion, ``90 5y FF``. Either may be replaced by an error,
``90 6y ee FF``, whose code ``ee`` says what went wrong (see :data:`ERROR_CODES`). An
inquiry gets no acknowledgement, only a completion carrying data: ``90 50 02 FF`` is
"power on" for the power inquiry.

UDP loses datagrams, so a request that draws no answer within ``timeout`` is sent again,
with the same sequence number, up to ``retries`` more times. Only the wait for the
acknowledgement is retried: once the camera has acknowledged a command it is running it,
and sending it again would run it twice. Numbering starts at 0 and goes up by one per
request; if the camera complains about the number (control reply ``0F 01``, e.g. after it
restarted) the client resets the numbering once and sends the request again.

The edge agent names its presets by role (:data:`PRESET_ROLES`); the hardware profile maps
each role to the camera's preset number, and :func:`preset_number` looks a role up with an
error that lists what is known.

The packet functions are pure and do no I/O. :class:`ViscaClient` is the asyncio client;
:func:`recall_preset_blocking` is a one-shot wrapper for the command line.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from edge_agent.errors import AgentError

DEFAULT_PORT: Final = 52381

# Payload types of the VISCA over IP header.
VISCA_COMMAND: Final = 0x0100
VISCA_INQUIRY: Final = 0x0110
VISCA_REPLY: Final = 0x0111
CONTROL_COMMAND: Final = 0x0200
CONTROL_REPLY: Final = 0x0201

PAYLOAD_TYPES: Final[frozenset[int]] = frozenset(
    {VISCA_COMMAND, VISCA_INQUIRY, VISCA_REPLY, CONTROL_COMMAND, CONTROL_REPLY}
)

HEADER: Final = struct.Struct(">HHI")
HEADER_SIZE: Final = HEADER.size  # 8
MAX_PAYLOAD: Final = 16
MAX_SEQUENCE: Final = 0xFFFFFFFF

# VISCA over IP carries one camera per address; it is always camera 1.
CAMERA_ADDRESS: Final = 1
TERMINATOR: Final = 0xFF

# Control payloads.
RESET_SEQUENCE: Final = b"\x01"
CONTROL_ACK: Final = b"\x01"
CONTROL_ERROR_SEQUENCE: Final = b"\x0f\x01"  # the camera did not expect this sequence number
CONTROL_ERROR_MESSAGE: Final = b"\x0f\x02"  # the camera did not understand the message type

# VISCA payloads that take no parameter.
POWER_ON: Final = bytes.fromhex("8101040002FF")
POWER_INQUIRY: Final = bytes.fromhex("81090400FF")

PRESET_MIN: Final = 0
PRESET_MAX: Final = 254  # 0xFF is the terminator; many cameras stop at 127 or lower

PRESET_ROLES: Final = ("teacher", "board", "students", "wide")

# Error codes of a ``90 6y ee FF`` reply: (what it means, what to do about it).
ERROR_CODES: Final[Mapping[int, tuple[str, str]]] = {
    0x02: (
        "syntax error",
        "the camera does not understand this command; check that the model supports it "
        "and that the camera speaks Sony-compatible VISCA",
    ),
    0x03: (
        "command buffer full",
        "the camera is still busy with earlier commands; wait for them to finish and retry",
    ),
    0x04: (
        "command cancelled",
        "the command was cancelled on the camera (a Cancel or another controller); "
        "send it again if it is still wanted",
    ),
    0x05: (
        "no socket",
        "the camera has no command running in that socket; nothing is left to cancel",
    ),
    0x41: (
        "command not executable",
        "the camera cannot run it in its present state; check that it is powered on, "
        "that no on-screen menu is open and, for a recall, that the preset has been stored",
    ),
}


class ViscaError(AgentError):
    """A VISCA camera refused a request, did not answer, or answered nonsense.

    ``code`` is the error code of a ``90 6y ee FF`` reply, or None when there was none.
    """

    def __init__(
        self, message: str, *, host: str, port: int, command: str, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.host, self.port, self.command, self.code = host, port, command, code


class ReplyKind(enum.Enum):
    """What a VISCA reply payload says."""

    ACK = "ack"
    COMPLETION = "completion"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ViscaPacket:
    """One VISCA over IP datagram."""

    payload_type: int
    sequence: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ViscaReply:
    """A camera's reply payload: ``90 4y FF``, ``90 5y <data> FF`` or ``90 6y ee FF``."""

    kind: ReplyKind
    address: int
    socket: int
    data: bytes = b""
    error_code: int | None = None


# --- pure packet functions ---------------------------------------------------------------


def build_packet(payload_type: int, payload: bytes, sequence: int) -> bytes:
    """The datagram carrying ``payload`` as ``payload_type`` with ``sequence``."""
    if payload_type not in PAYLOAD_TYPES:
        raise ValueError(f"unknown VISCA over IP payload type 0x{payload_type:04x}")
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise ValueError(f"VISCA payload must be 1..{MAX_PAYLOAD} bytes, got {len(payload)}")
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence number {sequence} does not fit in 32 bits")
    return HEADER.pack(payload_type, len(payload), sequence) + payload


def parse_packet(data: bytes) -> ViscaPacket:
    """The header fields and payload of a datagram; ValueError if it is not VISCA over IP."""
    if len(data) < HEADER_SIZE + 1:
        raise ValueError(f"datagram of {len(data)} bytes is too short for VISCA over IP")
    payload_type, length, sequence = HEADER.unpack_from(data)
    if payload_type not in PAYLOAD_TYPES:
        raise ValueError(f"unknown VISCA over IP payload type 0x{payload_type:04x}")
    payload = data[HEADER_SIZE:]
    if length != len(payload):
        raise ValueError(f"header says {length} payload bytes, datagram carries {len(payload)}")
    if length > MAX_PAYLOAD:
        raise ValueError(f"VISCA payload of {length} bytes exceeds {MAX_PAYLOAD}")
    return ViscaPacket(payload_type, sequence, bytes(payload))


def parse_reply(payload: bytes) -> ViscaReply:
    """Classify a VISCA reply payload; ValueError if it is not one."""
    if len(payload) < 3 or payload[-1] != TERMINATOR:
        raise ValueError(f"not a VISCA reply: {payload.hex(' ')}")
    head, kind_socket = payload[0], payload[1]
    if head & 0x8F != 0x80:
        raise ValueError(f"not a VISCA reply header: 0x{head:02x}")
    address = (head >> 4) - 8
    kind, socket = kind_socket >> 4, kind_socket & 0x0F
    body = payload[2:-1]
    if kind == 0x4 and not body:
        return ViscaReply(ReplyKind.ACK, address, socket)
    if kind == 0x5:
        return ViscaReply(ReplyKind.COMPLETION, address, socket, data=body)
    if kind == 0x6 and len(body) == 1:
        return ViscaReply(ReplyKind.ERROR, address, socket, error_code=body[0])
    raise ValueError(f"not a VISCA reply: {payload.hex(' ')}")


def check_preset(n: int) -> int:
    """``n`` if it is a preset number VISCA can carry; ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not PRESET_MIN <= n <= PRESET_MAX:
        raise ValueError(
            f"preset number must be an integer {PRESET_MIN}..{PRESET_MAX}, got {n!r} "
            "(many cameras accept only 0..127; see the camera's manual)"
        )
    return n


def recall_preset_payload(n: int) -> bytes:
    """``81 01 04 3F 02 pp FF``: move to preset ``n``."""
    return bytes((0x81, 0x01, 0x04, 0x3F, 0x02, check_preset(n), TERMINATOR))


def set_preset_payload(n: int) -> bytes:
    """``81 01 04 3F 01 pp FF``: store the present position as preset ``n``."""
    return bytes((0x81, 0x01, 0x04, 0x3F, 0x01, check_preset(n), TERMINATOR))


def preset_number(presets: Mapping[str, int], name: str) -> int:
    """The preset number the profile gives the role or name ``name``.

    KeyError (listing the known names) if it has none, ValueError if the number is out of
    range.
    """
    if name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise KeyError(
            f"no camera preset named {name!r}; known presets: {known} "
            f"(the usual roles are {', '.join(PRESET_ROLES)})"
        )
    try:
        return check_preset(presets[name])
    except ValueError as exc:
        raise ValueError(f"preset {name!r}: {exc}") from None


# --- asyncio client ----------------------------------------------------------------------


class _ViscaProtocol(asyncio.DatagramProtocol):
    """Sorts incoming datagrams into one queue per outstanding sequence number."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Queue[ViscaPacket | None]] = {}
        self.last_error: OSError | None = None
        self.closed = False

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        try:
            packet = parse_packet(data)
        except ValueError:
            return  # not VISCA over IP: ignore, as a camera would
        queue = self.waiting.get(packet.sequence)
        if queue is not None:
            queue.put_nowait(packet)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error on the connected socket, e.g. port unreachable.
        if isinstance(exc, OSError):
            self.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for queue in self.waiting.values():
            queue.put_nowait(None)


class ViscaClient:
    """Sends VISCA over IP commands and inquiries to one camera and waits for the answers.

    One request is in flight at a time. ``timeout`` is how long each try waits for the
    first answer and ``retries`` how many times a request is sent again before giving up;
    ``completion_timeout`` is how long an acknowledged command may run (a preset recall
    moves the head).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        timeout: float = 1.0,
        retries: int = 2,
        *,
        completion_timeout: float = 10.0,
    ) -> None:
        if timeout <= 0 or completion_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.host, self.port = host, port
        self.timeout, self.retries = timeout, retries
        self.completion_timeout = completion_timeout
        self._sequence = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _ViscaProtocol | None = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        """``host:port`` of the camera, as errors name it."""
        return f"{self.host}:{self.port}"

    @property
    def next_sequence(self) -> int:
        """The sequence number the next request will carry."""
        return self._sequence

    async def __aenter__(self) -> ViscaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def recall_preset(self, n: int) -> None:
        """Move the camera to preset ``n`` and wait until it gets there."""
        payload = recall_preset_payload(n)
        await self._command(payload, f"recall preset {n}")

    async def set_preset(self, n: int) -> None:
        """Store the camera's present position as preset ``n``."""
        payload = set_preset_payload(n)
        await self._command(payload, f"set preset {n}")

    async def power_on(self) -> None:
        """Wake the camera from standby."""
        await self._command(POWER_ON, "power on")

    async def inquire_power(self) -> bool:
        """True if the camera is powered on, False if it is in standby."""
        command = "power inquiry"
        reply = await self._inquiry(POWER_INQUIRY, command)
        if reply.data == b"\x02":
            return True
        if reply.data == b"\x03":
            return False
        if reply.data == b"\x04":
            raise ViscaError(
                f"camera {CAMERA_ADDRESS} at {self.where} reports a power circuit fault "
                f"to the {command}; power-cycle it and have it serviced if the fault stays",
                host=self.host,
                port=self.port,
                command=command,
            )
        raise self._nonsense(command, reply.data)

    async def reset_sequence(self) -> None:
        """Tell the camera to forget the sequence numbers it has seen."""
        async with self._lock:
            await self._reset_sequence()

    async def close(self) -> None:
        """Release the socket; the client opens a new one if used again."""
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # let connection_lost run

    # -- internals --

    async def _open(self) -> _ViscaProtocol:
        if self._protocol is not None and not self._protocol.closed:
            return self._protocol
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                _ViscaProtocol, remote_addr=(self.host, self.port)
            )
        except OSError as exc:
            raise ViscaError(
                f"cannot reach the camera at {self.where}: {exc}; check the host name or "
                "address in the hardware profile and the network",
                host=self.host,
                port=self.port,
                command="connect",
            ) from exc
        self._transport, self._protocol = transport, protocol
        return protocol

    def _take_sequence(self) -> int:
        sequence = self._sequence
        self._sequence = (sequence + 1) & MAX_SEQUENCE
        return sequence

    async def _exchange(
        self, protocol: _ViscaProtocol, payload_type: int, payload: bytes, command: str
    ) -> tuple[int, asyncio.Queue[ViscaPacket | None]]:
        """Send until the camera answers; the sequence number and its reply queue.

        The caller must remove the queue from ``protocol.waiting`` when done.
        """
        sequence = self._take_sequence()
        packet = build_packet(payload_type, payload, sequence)
        queue: asyncio.Queue[ViscaPacket | None] = asyncio.Queue()
        protocol.waiting[sequence] = queue
        protocol.last_error = None
        try:
            for _ in range(self.retries + 1):
                assert self._transport is not None
                self._transport.sendto(packet)
                try:
                    first = await asyncio.wait_for(queue.get(), self.timeout)
                except TimeoutError:
                    continue
                queue.put_nowait(first)  # hand it back for the caller to read
                return sequence, queue
        except BaseException:
            protocol.waiting.pop(sequence, None)
            raise
        protocol.waiting.pop(sequence, None)
        raise self._silent(command, protocol.last_error)

    async def _next(
        self, queue: asyncio.Queue[ViscaPacket | None], command: str, timeout: float
    ) -> ViscaPacket:
        packet = await asyncio.wait_for(queue.get(), timeout)
        if packet is None:
            raise ViscaError(
                f"the connection to camera {CAMERA_ADDRESS} at {self.where} was closed "
                f"while waiting for '{command}'",
                host=self.host,
                port=self.port,
                command=command,
            )
        return packet

    async def _request(
        self, payload_type: int, payload: bytes, command: str, *, want_ack: bool
    ) -> ViscaReply:
        """Send one command or inquiry; its completion, or ViscaError."""
        async with self._lock:
            for may_resync in (True, False):
                protocol = await self._open()
                sequence, queue = await self._exchange(protocol, payload_type, payload, command)
                try:
                    reply = await self._await_completion(queue, command, want_ack=want_ack)
                except _SequenceRejected:
                    if not may_resync:
                        raise self._nonsense(command, CONTROL_ERROR_SEQUENCE) from None
                    await self._reset_sequence()
                    continue
                finally:
                    protocol.waiting.pop(sequence, None)
                return reply
        raise AssertionError("unreachable")

    async def _await_completion(
        self, queue: asyncio.Queue[ViscaPacket | None], command: str, *, want_ack: bool
    ) -> ViscaReply:
        acked = not want_ack
        while True:
            wait = self.completion_timeout if acked else self.timeout
            try:
                packet = await self._next(queue, command, wait)
            except TimeoutError:
                raise self._stalled(command, acked) from None
            if packet.payload_type == CONTROL_REPLY:
                if packet.payload == CONTROL_ERROR_SEQUENCE:
                    raise _SequenceRejected
                raise self._nonsense(command, packet.payload)
            if packet.payload_type != VISCA_REPLY:
                raise self._nonsense(command, packet.payload)
            try:
                reply = parse_reply(packet.payload)
            except ValueError:
                raise self._nonsense(command, packet.payload) from None
            if reply.kind is ReplyKind.ERROR:
                raise self._refused(command, reply)
            if reply.kind is ReplyKind.ACK:
                acked = True
                continue
            return reply

    async def _command(self, payload: bytes, command: str) -> None:
        await self._request(VISCA_COMMAND, payload, command, want_ack=True)

    async def _inquiry(self, payload: bytes, command: str) -> ViscaReply:
        return await self._request(VISCA_INQUIRY, payload, command, want_ack=False)

    async def _reset_sequence(self) -> None:
        """The reset exchange; the caller holds the lock.

        The reset itself carries sequence number 0 and numbering goes on from 1.
        """
        command = "reset sequence number"
        protocol = await self._open()
        self._sequence = 0
        sequence, queue = await self._exchange(protocol, CONTROL_COMMAND, RESET_SEQUENCE, command)
        try:
            packet = await self._next(queue, command, self.timeout)
        finally:
            protocol.waiting.pop(sequence, None)
        if packet.payload_type != CONTROL_REPLY or packet.payload != CONTROL_ACK:
            raise self._nonsense(command, packet.payload)

    # -- error messages --

    def _refused(self, command: str, reply: ViscaReply) -> ViscaError:
        code = reply.error_code if reply.error_code is not None else -1
        meaning, advice = ERROR_CODES.get(
            code, ("unknown error", "see the camera's VISCA manual for this code")
        )
        return ViscaError(
            f"camera {CAMERA_ADDRESS} at {self.where} refused '{command}': {meaning} "
            f"(error 0x{code:02x}); {advice}",
            host=self.host,
            port=self.port,
            command=command,
            code=reply.error_code,
        )

    def _silent(self, command: str, error: OSError | None) -> ViscaError:
        tries = self.retries + 1
        why = f" (the network reported: {error})" if error is not None else ""
        return ViscaError(
            f"the camera at {self.where} did not answer '{command}' after {tries} "
            f"{'try' if tries == 1 else 'tries'} of {self.timeout:g} s{why}; check that it is "
            f"powered on, reachable on the network, and that VISCA over IP is enabled on "
            f"UDP port {self.port}",
            host=self.host,
            port=self.port,
            command=command,
        )

    def _stalled(self, command: str, acked: bool) -> ViscaError:
        if acked:
            detail = (
                f"acknowledged '{command}' but did not report it done within "
                f"{self.completion_timeout:g} s; check that the head is free to move"
            )
        else:
            detail = f"answered '{command}' but sent no acknowledgement within {self.timeout:g} s"
        return ViscaError(
            f"camera {CAMERA_ADDRESS} at {self.where} {detail}",
            host=self.host,
            port=self.port,
            command=command,
        )

    def _nonsense(self, command: str, payload: bytes) -> ViscaError:
        return ViscaError(
            f"camera {CAMERA_ADDRESS} at {self.where} gave an unexpected answer to "
            f"'{command}': {payload.hex(' ')}; check that the device on UDP port {self.port} "
            "is a VISCA over IP camera",
            host=self.host,
            port=self.port,
            command=command,
        )


class _SequenceRejected(Exception):
    """The camera answered with a sequence-number abnormality."""


def recall_preset_blocking(
    host: str, port: int, n: int, timeout: float = 1.0, retries: int = 2
) -> float:
    """Recall preset ``n`` on the camera at ``host:port``; the round trip in seconds.

    For the command line: opens a socket, waits for the completion, closes it.
    """
    check_preset(n)

    async def run() -> float:
        async with ViscaClient(host, port, timeout=timeout, retries=retries) as client:
            started = time.perf_counter()
            await client.recall_preset(n)
            return time.perf_counter() - started

    return asyncio.run(run())
