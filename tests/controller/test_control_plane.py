"""Control plane on real ZeroMQ sockets: enrolment, CURVE admission, liveness, restarts."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
import zmq
import zmq.asyncio
from helpers import issue_token as issue_token_for

from controller.daemon import ControllerConfig, ControllerDaemon
from edge_agent.enrol import enrol
from edge_agent.errors import EnrolmentFailed
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from protocols import envelope
from protocols.messages import (
    CommandAck,
    ErrorReply,
    Heartbeat,
    HeartbeatAck,
    Register,
)

pytestmark = pytest.mark.timeout(60)


def _register(identity: Identity) -> Register:
    return Register(
        classroom_id=identity.classroom_id,
        agent_version="test",
        profile_name="synthetic",
        profile_digest="0" * 64,
        inventory=[],
    )


def _heartbeat(seq: int) -> Heartbeat:
    return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)


async def _no_commands(env: envelope.Envelope) -> CommandAck:
    return CommandAck(command=env.type, ok=True)


def _endpoint(cfg: ControllerConfig) -> str:
    return f"tcp://127.0.0.1:{cfg.control_port}"


async def _enrolled_link(
    controller: ControllerDaemon, tmp_path: pathlib.Path, classroom: str = "city-101"
) -> tuple[Identity, ControlLink]:
    token = issue_token_for(controller.config.state_dir, classroom)
    identity = await enrol(_endpoint(controller.config), token, tmp_path / classroom)
    link = ControlLink(
        identity, lambda: _register(identity), _heartbeat, _no_commands, heartbeat_interval=0.3
    )
    await link.start()
    return identity, link


async def _wait(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_enrol_register_and_heartbeat(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    identity, link = await _enrolled_link(controller, tmp_path)
    try:
        await asyncio.wait_for(link.registered.wait(), 5)
        assert Identity.load(tmp_path / "city-101") == identity
        assert identity.controller_public_key == controller.hub._keys.public.decode()  # type: ignore[union-attr]
        await _wait(lambda: link.online and link.clock_offset_s is not None)
        assert controller.presence is not None and controller.presence.is_online("city-101")
    finally:
        await link.stop()


async def test_token_is_single_use_and_errors_are_clear(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    token = issue_token_for(controller.config.state_dir, "city-102")
    await enrol(_endpoint(controller.config), token, tmp_path / "a")
    with pytest.raises(EnrolmentFailed, match="no pending enrolment"):
        await enrol(_endpoint(controller.config), token, tmp_path / "b")
    with pytest.raises(EnrolmentFailed, match=r"damaged|must start"):
        await enrol(_endpoint(controller.config), "cb1!!!", tmp_path / "c")


async def test_unknown_key_is_refused_at_the_handshake(controller: ControllerDaemon) -> None:
    assert controller.hub is not None
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    public, secret = zmq.curve_keypair()
    sock.curve_serverkey = controller.hub._keys.public
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.linger = 0
    sock.connect(_endpoint(controller.config))
    body = _register(Identity("city-101", "", "", public.decode(), secret.decode()))
    await sock.send(envelope.encode(envelope.make(body, "city-101")))
    assert await sock.poll(1500) == 0  # never answered
    sock.close()
    ctx.term()
    assert controller.hub._key_book.denied >= 1
    assert controller.hub.counters.received == 0


async def test_malformed_message_is_answered_and_loop_survives(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    assert controller.hub is not None
    token = issue_token_for(controller.config.state_dir, "city-103")
    identity = await enrol(_endpoint(controller.config), token, tmp_path / "x")
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_serverkey = identity.controller_public_key.encode()
    sock.curve_publickey = identity.public_key.encode()
    sock.curve_secretkey = identity.secret_key.encode()
    sock.linger = 0
    sock.connect(_endpoint(controller.config))
    try:
        for garbage in (
            b"\x00\x01garbage",
            b'{"v":1,"type":"agent.heartbeat","body":{}}',
            b'{"v":1,"type":"nope"}',
        ):
            await sock.send(garbage)
            reply = envelope.decode(await asyncio.wait_for(sock.recv(), 3))
            assert isinstance(reply.body, ErrorReply) and reply.body.code == "malformed"
        # a message claiming another classroom's name is refused too
        await sock.send(envelope.encode(envelope.make(_heartbeat(1), "city-999")))
        reply = envelope.decode(await asyncio.wait_for(sock.recv(), 3))
        assert isinstance(reply.body, ErrorReply) and reply.body.code == "sender-mismatch"
        # and the loop still serves a good message
        await sock.send(envelope.encode(envelope.make(_register(identity), "city-103")))
        reply = envelope.decode(await asyncio.wait_for(sock.recv(), 3))
        assert reply.type == "agent.register.ack"
        await sock.send(envelope.encode(envelope.make(_heartbeat(2), "city-103")))
        reply = envelope.decode(await asyncio.wait_for(sock.recv(), 3))
        assert isinstance(reply.body, HeartbeatAck)
    finally:
        sock.close()
        ctx.term()
    assert controller.hub.counters.decode_errors == 3
    assert controller.hub.counters.spoofed == 1


async def test_silent_agent_is_offline_within_three_intervals(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    _, link = await _enrolled_link(controller, tmp_path, "city-104")
    assert controller.presence is not None
    await asyncio.wait_for(link.registered.wait(), 5)
    await _wait(lambda: controller.presence.is_online("city-104"))  # type: ignore[union-attr]
    await link.stop()
    silent_from = time.monotonic()
    await _wait(lambda: not controller.presence.is_online("city-104"), 3)  # type: ignore[union-attr]
    assert time.monotonic() - silent_from <= 3 * 0.3 + 0.1


async def test_agent_reconnects_after_controller_restart(
    controller_config: ControllerConfig, tmp_path: pathlib.Path
) -> None:
    first = ControllerDaemon(controller_config)
    await first.start()
    _identity, link = await _enrolled_link(first, tmp_path, "city-105")
    try:
        await asyncio.wait_for(link.registered.wait(), 5)
        await first.stop()
        await asyncio.sleep(1.0)
        second = ControllerDaemon(controller_config)
        await second.start()
        try:
            # Heartbeats can mark it online a moment before its re-registration lands.
            await _wait(
                lambda: (
                    second.presence is not None
                    and second.presence.is_online("city-105")
                    and link.counters.registrations >= 2
                ),
                15,
            )
        finally:
            await second.stop()
    finally:
        await link.stop()


async def test_agent_with_a_withdrawn_key_says_to_re_enrol(
    controller: ControllerDaemon, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    identity, link = await _enrolled_link(controller, tmp_path, "city-106")
    try:
        await asyncio.wait_for(link.registered.wait(), 5)
        await link.stop()
        # the classroom is re-issued a token and enrolled from another box
        token = issue_token_for(controller.config.state_dir, "city-106")
        await enrol(_endpoint(controller.config), token, tmp_path / "other-box")
        link = ControlLink(
            identity, lambda: _register(identity), _heartbeat, _no_commands, heartbeat_interval=0.3
        )
        await link.start()
        await _wait(lambda: link.auth_refused, 5)
        assert link.counters.auth_failures >= 1 and not link.registered.is_set()
        assert "run 'classroom-agent enroll' again" in caplog.text
    finally:
        await link.stop()


async def test_agent_survives_malformed_messages_from_the_controller(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    assert controller.hub is not None
    _, link = await _enrolled_link(controller, tmp_path, "city-107")
    try:
        await asyncio.wait_for(link.registered.wait(), 5)
        route = controller.hub._routes["city-107"]
        assert controller.hub._control is not None
        await controller.hub._control.send_multipart([route, b"\xffgarbage"])
        await controller.hub._control.send_multipart([route, b'{"v":7,"type":"cmd.join"}'])
        await _wait(lambda: link.counters.decode_errors == 2, 5)
        seq = link.counters.sent
        await _wait(lambda: link.counters.sent > seq + 2 and link.online, 5)  # still beating
    finally:
        await link.stop()
