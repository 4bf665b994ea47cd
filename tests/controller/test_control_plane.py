"""Control plane on real ZeroMQ sockets: enrolment, CURVE admission, liveness, restarts."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
import zmq
import zmq.asyncio
from helpers import issue_token as issue_token_for
from zmq.utils.monitor import parse_monitor_message

from controller.app.daemon import ControllerConfig, ControllerDaemon
from edge_agent.enrol import enrol
from edge_agent.errors import EnrolmentFailed
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from protocols import envelope
from protocols.envelope import MAX_MESSAGE_BYTES
from protocols.messages import (
    ActionResult,
    AgentAction,
    CommandAck,
    ErrorReply,
    Heartbeat,
    HeartbeatAck,
    Register,
    StartRecording,
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
        if reply.type == "schedule.update":  # pushed as the agent registers
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
    # What waits for the controller (the agent's uploads) is told of each return.
    returns: list[int] = []
    link.on_registered = lambda: returns.append(link.counters.registrations)
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
            assert returns and returns[-1] == link.counters.registrations >= 2, returns
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


class _RecordingAgent:
    """A real link whose doctor answer waits until the test lets it go."""

    def __init__(self, identity: Identity) -> None:
        self.commands: list[envelope.Envelope] = []
        self.release = asyncio.Event()
        self.link = ControlLink(
            identity, lambda: _register(identity), _heartbeat, self._on_command, 0.3
        )

    async def _on_command(self, env: envelope.Envelope) -> ActionResult | CommandAck:
        self.commands.append(env)
        if isinstance(env.body, AgentAction):
            await self.release.wait()
            return ActionResult(action=env.body.action, ok=True, output="genuine")
        return CommandAck(command=env.type, ok=True)


def _rogue(ctx: zmq.asyncio.Context, cfg: ControllerConfig, key: Identity, route: bytes):  # type: ignore[no-untyped-def]
    """A DEALER with a genuine enrolled key that names its own routing id."""
    sock = ctx.socket(zmq.DEALER)
    sock.curve_serverkey = key.controller_public_key.encode()
    sock.curve_publickey = key.public_key.encode()
    sock.curve_secretkey = key.secret_key.encode()
    sock.identity = route
    sock.linger = 0
    sock.connect(_endpoint(cfg))
    return sock


async def _drain(sock, seconds: float) -> list[envelope.Envelope]:  # type: ignore[no-untyped-def]
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await sock.poll(int(left * 1000)):
            got.append(envelope.decode(await sock.recv()))
    return got


async def test_another_rooms_key_cannot_take_over_a_routing_id(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    """Room B's genuine key, dialling in under room A's routing id, gets none of A's
    commands, and its forged answer to A's command is not taken as A's."""
    hub = controller.hub
    assert hub is not None
    cfg = controller.config
    ids = {}
    for cid in ("room-a", "room-b"):
        token = issue_token_for(cfg.state_dir, cid)
        ids[cid] = await enrol(_endpoint(cfg), token, tmp_path / cid)
    a, b = _RecordingAgent(ids["room-a"]), _RecordingAgent(ids["room-b"])
    ctx = zmq.asyncio.Context()
    rogues = []
    try:
        for agent in (a, b):
            await agent.link.start()
            await asyncio.wait_for(agent.link.registered.wait(), 5)
        # One rogue claims the classroom's name, the other the exact route A is on now.
        for route in (b"room-a", hub._routes["room-a"]):
            rogue = _rogue(ctx, cfg, ids["room-b"], route)
            rogues.append(rogue)
            await rogue.send(envelope.encode(envelope.make(_register(ids["room-b"]), "room-b")))
            await rogue.send(envelope.encode(envelope.make(_heartbeat(1), "room-b")))
        await asyncio.sleep(0.5)

        asked = asyncio.create_task(hub.request("room-a", AgentAction(action="doctor"), 10))
        await _wait(lambda: any(isinstance(e.body, AgentAction) for e in a.commands))
        command_id = a.commands[-1].id
        forged = ActionResult(action="doctor", ok=True, output="forged")
        await rogues[0].send(envelope.encode(envelope.make(forged, "room-b", command_id)))
        assert await b.link.send(forged, correlation_id=command_id)  # B's own route, too
        await asyncio.sleep(0.5)
        a.release.set()
        reply = await asyncio.wait_for(asked, 5)
        assert reply.expect(ActionResult).output == "genuine"
        assert reply.sender == "room-a"

        # Room B's own commands still reach room B's own link.
        await hub.request("room-b", StartRecording(lesson_id="L1"), 5)
        # (schedule pushes may come and go meanwhile; the commands are what count)
        assert [e.type for e in b.commands if e.type.startswith("cmd.")] == ["cmd.record.start"]

        for rogue in rogues:
            seen = await _drain(rogue, 0.5)
            assert not [e for e in seen if e.type not in ("error", "agent.heartbeat.ack")], seen
            assert not [e for e in seen if isinstance(e.body, HeartbeatAck)], seen
        assert hub.counters.spoofed >= 1 and hub.counters.foreign_replies == 1
        assert a.link.online and b.link.online
    finally:
        for rogue in rogues:
            rogue.close(linger=0)
        ctx.term()
        await a.link.stop()
        await b.link.stop()


async def test_an_oversized_message_drops_its_sender_and_the_hub_carries_on(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    """A 40 MiB message to the enrolment socket is never received: the socket hangs up on
    the sender (MAXMSGSIZE), and the next agent enrols as usual."""
    hub = controller.hub
    assert hub is not None
    assert hub._control is not None and hub._enrol is not None
    assert 0 < hub._control.getsockopt(zmq.MAXMSGSIZE) <= MAX_MESSAGE_BYTES <= 4 * 1024 * 1024
    assert 0 < hub._enrol.getsockopt(zmq.MAXMSGSIZE) <= MAX_MESSAGE_BYTES
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    public, secret = zmq.curve_keypair()
    sock.curve_serverkey = hub._keys.public
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.linger = 0
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(f"tcp://127.0.0.1:{hub.enrol_port}")
    try:
        await sock.send(b"x" * (40 * 1024 * 1024))
        event = await asyncio.wait_for(monitor.recv_multipart(), 10)
        assert parse_monitor_message(event)["event"] == zmq.EVENT_DISCONNECTED
        assert await sock.poll(500) == 0  # never answered
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
    assert hub.counters.decode_errors == 0  # never reached the loop
    token = issue_token_for(controller.config.state_dir, "city-108")
    identity = await enrol(_endpoint(controller.config), token, tmp_path / "city-108")
    assert identity.classroom_id == "city-108"


async def test_a_burst_is_answered_in_order_and_a_quiet_socket_still_wakes(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    """Heartbeats are answered on the receive loop, many taken off the socket at once:
    a burst larger than one drain gets every ack, in order; a bad message inside the
    burst is refused without losing its neighbours; and after a quiet spell (the socket's
    wake-up consumed by the loop's own sends) a message for the asynchronous handlers is
    still received and answered."""
    hub = controller.hub
    assert hub is not None
    token = issue_token_for(controller.config.state_dir, "city-150")
    identity = await enrol(_endpoint(controller.config), token, tmp_path / "x")
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_serverkey = identity.controller_public_key.encode()
    sock.curve_publickey = identity.public_key.encode()
    sock.curve_secretkey = identity.secret_key.encode()
    sock.connect(_endpoint(controller.config))
    try:
        await sock.send(envelope.encode(envelope.make(_register(identity), "city-150")))
        replies = await _drain(sock, 1.0)
        assert any(r.type == "agent.register.ack" for r in replies), replies
        burst = 600  # more than two drains' worth
        for seq in range(1, burst + 1):
            if seq == 150:
                await sock.send(b"\x00not an envelope")
            await sock.send(envelope.encode(envelope.make(_heartbeat(seq), "city-150")))
        got = [r for r in await _drain(sock, 3.0) if r.type != "schedule.update"]
        acks = [r.body.seq for r in got if isinstance(r.body, HeartbeatAck)]
        errors = [r for r in got if isinstance(r.body, ErrorReply)]
        assert acks == list(range(1, burst + 1))
        assert [e.body.code for e in errors] == ["malformed"]  # type: ignore[union-attr]
        await asyncio.sleep(1.5)  # quiet: nothing arrives, the loop waits on the socket
        await sock.send(envelope.encode(envelope.make(_register(identity), "city-150")))
        replies = await _drain(sock, 2.0)
        assert any(r.type == "agent.register.ack" for r in replies), replies
    finally:
        sock.close(linger=0)
        ctx.term()
