"""VISCA over IP: exact framing, and a client driving a real UDP PTZ head."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from peers.visca_responder import ViscaResponder

from edge_agent.devices.visca import (
    CONTROL_COMMAND,
    POWER_INQUIRY,
    POWER_ON,
    PRESET_ROLES,
    RESET_SEQUENCE,
    VISCA_COMMAND,
    VISCA_INQUIRY,
    VISCA_REPLY,
    ReplyKind,
    ViscaClient,
    ViscaError,
    ViscaPacket,
    build_packet,
    parse_packet,
    parse_reply,
    preset_number,
    recall_preset_blocking,
    recall_preset_payload,
    set_preset_payload,
)


@pytest.fixture
def head() -> Iterator[ViscaResponder]:
    with ViscaResponder() as responder:
        yield responder


def client_for(head: ViscaResponder, timeout: float = 0.2) -> ViscaClient:
    return ViscaClient("127.0.0.1", head.port, timeout=timeout, retries=2)


# --- framing ---------------------------------------------------------------------------


def test_recall_preset_packet_bytes_and_round_trip() -> None:
    packet = build_packet(VISCA_COMMAND, recall_preset_payload(3), 7)
    assert packet == bytes.fromhex("0100 0007 00000007 81 01 04 3F 02 03 FF")
    assert parse_packet(packet) == ViscaPacket(VISCA_COMMAND, 7, bytes.fromhex("8101043F0203FF"))


def test_other_packets_bytes() -> None:
    assert build_packet(VISCA_COMMAND, set_preset_payload(0x7F), 0x01020304) == bytes.fromhex(
        "0100 0007 01020304 81 01 04 3F 01 7F FF"
    )
    assert build_packet(VISCA_COMMAND, POWER_ON, 1) == bytes.fromhex(
        "0100 0006 00000001 81 01 04 00 02 FF"
    )
    assert build_packet(VISCA_INQUIRY, POWER_INQUIRY, 2) == bytes.fromhex(
        "0110 0005 00000002 81 09 04 00 FF"
    )
    reset = build_packet(CONTROL_COMMAND, RESET_SEQUENCE, 0)
    assert reset == bytes.fromhex("0200 0001 00000000 01")
    assert parse_packet(reset) == ViscaPacket(CONTROL_COMMAND, 0, b"\x01")


def test_replies_parse() -> None:
    ack = parse_packet(bytes.fromhex("0111 0003 0000002A 90 41 FF"))
    assert (ack.payload_type, ack.sequence) == (VISCA_REPLY, 42)
    reply = parse_reply(ack.payload)
    assert (reply.kind, reply.address, reply.socket) == (ReplyKind.ACK, 1, 1)
    assert parse_reply(bytes.fromhex("9052FF")).kind is ReplyKind.COMPLETION
    power = parse_reply(bytes.fromhex("905002FF"))
    assert (power.kind, power.data) == (ReplyKind.COMPLETION, b"\x02")
    error = parse_reply(bytes.fromhex("906141FF"))
    assert (error.kind, error.socket, error.error_code) == (ReplyKind.ERROR, 1, 0x41)


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("0111 0004 00000001 90 41 FF"),  # length says 4, carries 3
        bytes.fromhex("0111 0003 0000"),  # truncated header
        bytes.fromhex("0999 0003 00000001 90 41 FF"),  # unknown payload type
    ],
)
def test_malformed_datagrams_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_packet(data)


@pytest.mark.parametrize("n", [-1, 255, 1000])
def test_invalid_preset_raises_value_error(n: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.254"):
        recall_preset_payload(n)


async def test_invalid_preset_is_refused_before_anything_is_sent(head: ViscaResponder) -> None:
    async with client_for(head) as client:
        with pytest.raises(ValueError, match=r"0\.\.254"):
            await client.recall_preset(255)
    assert head.sequences == []


def test_preset_number_by_role() -> None:
    presets = {"teacher": 1, "board": 2, "wide": 9}
    assert preset_number(presets, "board") == 2
    assert "students" in PRESET_ROLES
    with pytest.raises(KeyError, match="board, teacher, wide"):
        preset_number(presets, "students")
    with pytest.raises(ValueError, match="'wide'"):
        preset_number({"wide": 300}, "wide")


# --- against the real UDP head ---------------------------------------------------------


async def test_recall_and_set_preset_reach_the_head(head: ViscaResponder) -> None:
    async with client_for(head) as client:
        await client.recall_preset(3)
        await client.set_preset(5)
        await client.recall_preset(0)
        assert await client.inquire_power() is True
    assert head.recalled == [3, 0]
    assert head.stored == [5]


async def test_sequence_numbers_increase(head: ViscaResponder) -> None:
    async with client_for(head) as client:
        for n in range(4):
            await client.recall_preset(n)
        await client.inquire_power()
        assert client.next_sequence == 5
    seen = head.sequences
    assert len(seen) == 5
    assert seen == sorted(set(seen))


@pytest.mark.parametrize(
    ("code", "hint"),
    [(0x41, "not executable"), (0x03, "buffer full"), (0x02, "syntax error")],
)
async def test_error_reply_raises_helpful_visca_error(
    head: ViscaResponder, code: int, hint: str
) -> None:
    head.error_code = code
    async with client_for(head) as client:
        with pytest.raises(ViscaError) as caught:
            await client.recall_preset(4)
    message = str(caught.value)
    assert f"127.0.0.1:{head.port}" in message
    assert "camera 1" in message
    assert "recall preset 4" in message
    assert hint in message
    assert caught.value.code == code
    assert head.recalled == []


async def test_silent_head_times_out_naming_host_and_port(head: ViscaResponder) -> None:
    head.silent = True
    timeout, retries = 0.2, 2
    async with ViscaClient("127.0.0.1", head.port, timeout=timeout, retries=retries) as client:
        started = time.monotonic()
        with pytest.raises(ViscaError) as caught:
            await client.recall_preset(1)
        elapsed = time.monotonic() - started
    assert timeout * (retries + 1) * 0.9 <= elapsed < timeout * (retries + 1) + 0.3
    message = str(caught.value)
    assert f"127.0.0.1:{head.port} did not answer" in message
    assert f"UDP port {head.port}" in message
    assert "powered on" in message
    # the same datagram was sent once per try, with one sequence number
    assert head.sequences == [0, 0, 0]


async def test_client_recovers_when_the_head_answers_again(head: ViscaResponder) -> None:
    async with client_for(head, timeout=0.1) as client:
        head.silent = True
        with pytest.raises(ViscaError):
            await client.recall_preset(1)
        head.silent = False
        await client.recall_preset(2)
    assert head.recalled == [2]


async def test_sequence_abnormality_resets_the_numbering_and_retries(
    head: ViscaResponder,
) -> None:
    head.want_reset = True
    async with client_for(head) as client:
        await client.recall_preset(6)
        assert client.next_sequence == 2
    assert head.recalled == [6]
    # refused with 0, reset with 0, sent again with 1
    assert head.sequences == [0, 0, 1]


async def test_nothing_listening_is_reported(unused_udp_port: int) -> None:
    # unused_udp_port is pytest-asyncio's; the kernel answers "port unreachable"
    async with ViscaClient("127.0.0.1", unused_udp_port, timeout=0.1, retries=0) as client:
        with pytest.raises(ViscaError, match=f"127.0.0.1:{unused_udp_port} did not answer"):
            await client.inquire_power()


def test_recall_preset_blocking_returns_round_trip(head: ViscaResponder) -> None:
    seconds = recall_preset_blocking("127.0.0.1", head.port, 7, timeout=0.2)
    assert 0 < seconds < 0.5
    assert head.recalled == [7]
