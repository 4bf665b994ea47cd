"""Rolling upgrades: this build and release 0.5 (one minor older) read each other.

Release 0.5's own golden messages (``golden/release-0.5``, as that release wrote them)
must decode here. What this build sends, adapted for a minor-5 peer, must validate
against 0.5's own models, whose JSON schemas (``protocols/compat/minor5.json``) refuse
any field they do not know, as 0.5 did.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jsonschema
import pytest

from protocols import envelope
from protocols.compat import down
from protocols.errors import NotForPeer
from protocols.messages import CommandAck, JanusPlacement, JoinLesson, Subscription
from protocols.version import OLDEST_MINOR, PROTOCOL_MINOR

GOLDEN = pathlib.Path(__file__).parent / "golden"
OLD = (GOLDEN / "release-0.5" / "messages.jsonl").read_bytes().splitlines()
NEW = (GOLDEN / "messages.jsonl").read_bytes().splitlines()
SHAPES = json.loads((pathlib.Path(envelope.__file__).parent / "compat" / "minor5.json").read_text())
# Types that did not exist in 0.5: never sent to a minor-5 peer.
NEW_TYPES = {"lesson.floor", "lesson.floor.request", "agent.upload_token"}


def _as_release_05_reads(data: bytes) -> None:
    """Validate wire bytes as release 0.5's models would (they forbid unknown fields)."""
    doc: dict[str, Any] = json.loads(data)
    jsonschema.validate(
        {k: v for k, v in doc.items() if k != "body"} | {"body": {}},
        {
            **SHAPES["envelope"],
            "properties": {**SHAPES["envelope"]["properties"], "body": {}},
        },
    )
    jsonschema.validate(doc["body"], SHAPES["bodies"][doc["type"]])


@pytest.mark.parametrize("line", OLD, ids=[json.loads(x)["type"] for x in OLD])
def test_every_message_of_release_05_decodes_here(line: bytes) -> None:
    env = envelope.decode(line)
    assert env.m == OLDEST_MINOR  # 0.5 sent no minor
    # And what it said is kept: its body fields come back out the same.
    assert (
        env.body.model_dump(mode="json", include=set(json.loads(line)["body"]))
        == json.loads(line)["body"]
    )


@pytest.mark.parametrize("line", NEW, ids=[json.loads(x)["type"] for x in NEW])
def test_every_message_of_this_build_reaches_a_release_05_peer_or_is_held_back(
    line: bytes,
) -> None:
    env = envelope.decode(line)
    assert env.m == PROTOCOL_MINOR
    if env.type in NEW_TYPES:
        with pytest.raises(NotForPeer, match="older release"):
            envelope.encode(env, peer_minor=OLDEST_MINOR)
        return
    adapted = envelope.encode(env, peer_minor=OLDEST_MINOR)
    _as_release_05_reads(adapted)
    # Unadapted, 0.5 would refuse every message: the envelope's "m" alone is unknown to it.
    with pytest.raises(jsonschema.ValidationError):
        _as_release_05_reads(envelope.encode(env))


def test_the_release_05_schemas_refuse_what_05_refused() -> None:
    """The check above can fail: 0.5's schema refuses a join with this build's fields."""
    join = JoinLesson(
        lesson_id="l1",
        role="receiver",
        publish=[],
        subscribe=[Subscription(source_classroom="a", track="t", kind="video", role="teacher")],
        start_at=1.0,
        end_at=2.0,
    )
    raw = json.loads(envelope.encode(envelope.make(join, "controller")))
    with pytest.raises(jsonschema.ValidationError, match="role"):
        jsonschema.validate(raw["body"], SHAPES["bodies"]["cmd.join"])
    adapted = down(raw, OLDEST_MINOR)
    assert adapted is not None and "m" not in adapted
    assert "role" not in adapted["body"]["subscribe"][0]
    assert adapted["body"]["subscribe"][0]["track"] == "t"  # what 0.5 knew is all there


def test_a_newer_peers_unknown_fields_are_kept_and_sent_on() -> None:
    """A peer one minor newer: its envelope field is ignored, its body field kept."""
    data = (
        b'{"v":1,"m":7,"flags":["new"],"type":"cmd.ack","id":"a","sender":"s","ts":1,'
        b'"body":{"command":"cmd.join","ok":true,"error":"","warmup_ms":12}}'
    )
    env = envelope.decode(data)
    assert env.m == 7
    body = env.expect(CommandAck)
    assert body.ok and body.model_extra == {"warmup_ms": 12}
    assert json.loads(envelope.encode(env))["body"]["warmup_ms"] == 12


def test_a_janus_placement_is_off_the_wire_when_absent_and_never_reaches_release_05() -> None:
    """The join's ``media`` (issue 13) is left off when None, and dropped for a minor-5 peer."""
    join = JoinLesson(
        lesson_id="l1",
        role="lead",
        publish=["teacher"],
        subscribe=[],
        start_at=1.0,
        end_at=2.0,
    )
    assert "media" not in json.loads(envelope.encode(envelope.make(join, "controller")))["body"]
    placed = join.model_copy(
        update={
            "media": JanusPlacement(
                api_url="http://10.0.0.5:8088/janus", room=7, pin="p", instance="a"
            )
        }
    )
    raw = envelope.encode(envelope.make(placed, "controller"))
    assert json.loads(raw)["body"]["media"]["room"] == 7
    assert envelope.decode(raw).expect(JoinLesson).media == placed.media  # round trip
    adapted = envelope.encode(envelope.decode(raw), peer_minor=OLDEST_MINOR)
    _as_release_05_reads(adapted)
    assert "media" not in json.loads(adapted)["body"]


def test_a_janus_placement_is_checked() -> None:
    """A placement that is not an HTTP URL and a room id is refused, naming the field."""
    with pytest.raises(ValueError, match="api_url"):
        JanusPlacement(api_url="tcp://10.0.0.5", room=7)
    with pytest.raises(ValueError, match="room"):
        JanusPlacement(api_url="http://10.0.0.5:8088/janus", room=0)
