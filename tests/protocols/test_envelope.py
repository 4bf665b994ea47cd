"""Wire format: golden bytes, round trips, and precise errors for bad input."""

from __future__ import annotations

import pathlib
import ssl
import sys

import pytest

from protocols import envelope
from protocols.errors import MalformedMessage, UnknownMessageType, UnsupportedVersion
from protocols.messages import ALL_BODIES, EnrolResult, LeaveLesson
from protocols.tls import pinned_client_context

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from make_golden import golden_envelopes

GOLDEN = (pathlib.Path(__file__).parent / "golden" / "messages.jsonl").read_bytes().splitlines()


def test_golden_covers_every_message_type() -> None:
    types = {envelope.decode(line).type for line in GOLDEN}
    assert types == {b.TYPE for b in ALL_BODIES}


@pytest.mark.parametrize("index", range(len(GOLDEN)))
def test_golden_bytes_are_stable(index: int) -> None:
    """Encoding today's models gives exactly the pinned bytes, and decoding gives the models."""
    expected = golden_envelopes()[index]
    assert envelope.encode(expected) == GOLDEN[index]
    assert envelope.decode(GOLDEN[index]) == expected


def test_make_stamps_version_id_sender_and_time() -> None:
    env = envelope.make(LeaveLesson(lesson_id="L1"), "city-101", correlation_id="x")
    assert env.v == 1 and env.type == "cmd.leave" and 0 < len(env.id) <= 64
    assert env.sender == "city-101" and env.correlation_id == "x" and env.ts > 1.7e9


BAD = [
    (b"\xff\xfe", MalformedMessage, "not UTF-8 JSON"),
    (b"{not json", MalformedMessage, "not UTF-8 JSON"),
    (b"[1,2]", MalformedMessage, "must be a JSON object"),
    (b'{"type":"cmd.leave"}', MalformedMessage, "'v'"),
    (b'{"v":99,"type":"cmd.leave"}', UnsupportedVersion, "version 99"),
    (b'{"v":1,"type":"cmd.launch_rocket","body":{}}', UnknownMessageType, "cmd.launch_rocket"),
    (
        b'{"v":1,"type":"cmd.leave","id":"a","sender":"s","ts":1,"body":{}}',
        MalformedMessage,
        "lesson_id: Field required",
    ),
    (
        b'{"v":1,"type":"agent.heartbeat","id":"a","sender":"s","ts":1,"body":{"seq":-1,'
        b'"cpu_pct":1,"mem_pct":1,"disk_free_bytes":1,"disk_pct":1}}',
        MalformedMessage,
        "seq",
    ),
    (
        b'{"v":1,"type":"cmd.leave","id":"","sender":"s","ts":1,"body":{"lesson_id":"x"}}',
        MalformedMessage,
        "id",
    ),
]


@pytest.mark.parametrize(("data", "error", "fragment"), BAD)
def test_bad_input_raises_precise_error(data: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        envelope.decode(data)
    assert fragment in str(info.value)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        envelope.decode(b" " * (envelope.MAX_MESSAGE_BYTES + 1))


def test_heartbeat_from_an_older_agent_still_decodes() -> None:
    """Fields added since 0.3 are optional: a controller must accept an older agent's beat."""
    old = (pathlib.Path(__file__).parent / "golden" / "heartbeat-0.3.jsonl").read_bytes().strip()
    env = envelope.decode(old)
    assert env.type == "agent.heartbeat"
    body = env.body
    assert getattr(body, "audio_level_dbfs", "missing") is None
    assert getattr(body, "net_bytes_sent", "missing") is None


def test_an_accepted_enrolment_carries_the_ca_to_pin_and_a_refusal_does_not() -> None:
    """The agent pins the controller's HTTPS from EnrolResult; refusals stay as before."""
    pinned = [
        envelope.decode(line).body
        for line in GOLDEN
        if envelope.decode(line).type == "enrol.result"
        and getattr(envelope.decode(line).body, "tls_ca_pem", "")
    ]
    assert len(pinned) == 1
    pem = pinned[0].tls_ca_pem  # type: ignore[attr-defined]
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert pinned_client_context(pem).verify_mode == ssl.CERT_REQUIRED
    refused = EnrolResult(accepted=False, reason="token expired")
    assert b"tls_ca_pem" not in envelope.encode(envelope.make(refused, "enrolling:x"))


def test_message_ids_are_unique_here_and_in_a_forked_child() -> None:
    """Ids are a per-process prefix and a counter: never repeated in a process, and a
    forked child (the relay's worker, say) does not repeat its parent's."""
    import os

    ids = {envelope.make(LeaveLesson(lesson_id="L1"), "c").id for _ in range(1000)}
    assert len(ids) == 1000
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, envelope.make(LeaveLesson(lesson_id="L1"), "c").id.encode())
        os._exit(0)
    os.waitpid(child, 0)
    theirs = os.read(read, 128).decode()
    ours = envelope.make(LeaveLesson(lesson_id="L1"), "c").id
    assert theirs and theirs[:20] != ours[:20] and theirs not in ids


def test_what_the_fast_codec_refuses_still_travels() -> None:
    """A peer whose JSON library writes NaN or Infinity (the standard library does) is
    still read, and a number too big for the fast encoder is still written, exactly as the
    standard library would write it."""
    import json

    from protocols.messages import Heartbeat

    raw = (
        b'{"v":1,"type":"agent.heartbeat","id":"x","sender":"c","ts":1.0,"body":'
        b'{"seq":1,"cpu_pct":NaN,"mem_pct":1,"disk_free_bytes":1,"disk_pct":1,'
        b'"audio_level_dbfs":-Infinity}}'
    )
    body = envelope.decode(raw).expect(Heartbeat)
    assert body.cpu_pct != body.cpu_pct and body.audio_level_dbfs == float("-inf")
    huge = {"n": 2**70, "s": "é"}
    assert (
        envelope.dumps(huge) == json.dumps(huge, ensure_ascii=False, separators=(",", ":")).encode()
    )
    with pytest.raises(MalformedMessage, match="not UTF-8 JSON"):
        envelope.decode(b'{"v":1,')
