"""The talk timeline in a lesson report (S-T analysis): its shape on the wire, what it
refuses, and a release-0.5 controller never seeing it."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest
from pydantic import ValidationError

from protocols import envelope
from protocols.messages import LessonReport, TalkTimeline, TrackReport
from protocols.talk import MAX_TALK_SECONDS
from protocols.version import OLDEST_MINOR

SHAPES = json.loads((pathlib.Path(envelope.__file__).parent / "compat" / "minor5.json").read_text())
TRACK = TrackReport(
    track="teacher", kind="video", direction="recv", source_classroom="city-101", frames=10
)


def _report(talk: TalkTimeline | None) -> LessonReport:
    return LessonReport(lesson_id="abc", tracks=[TRACK], talk=talk)


def test_a_report_with_a_timeline_round_trips() -> None:
    talk = TalkTimeline(start=1795000020.0, codes="..TTTSSW?.")
    data = envelope.encode(envelope.make(_report(talk), "city-101"))
    back = envelope.decode(data).expect(LessonReport)
    assert back.talk == talk
    assert json.loads(data)["body"]["talk"] == {"start": 1795000020.0, "codes": "..TTTSSW?."}


def test_a_report_without_one_is_the_same_bytes_as_before() -> None:
    doc = json.loads(envelope.encode(envelope.make(_report(None), "city-101")))
    assert "talk" not in doc["body"]


@pytest.mark.parametrize(
    ("start", "codes", "field"),
    [
        (1.0, "TTX", "codes"),  # an unknown code
        (1.0, "T" * (MAX_TALK_SECONDS + 1), "codes"),  # longer than six hours
        (-5.0, "T", "start"),
    ],
)
def test_a_bad_timeline_is_refused_naming_the_field(start: float, codes: str, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TalkTimeline(start=start, codes=codes)


def test_a_malformed_timeline_on_the_wire_is_refused_with_its_place() -> None:
    doc = json.loads(envelope.encode(envelope.make(_report(None), "city-101")))
    doc["body"]["talk"] = {"start": 1.0, "codes": "T T"}
    with pytest.raises(Exception, match="talk"):
        envelope.decode(json.dumps(doc).encode()).expect(LessonReport)


def test_a_release_05_controller_gets_the_report_without_the_timeline() -> None:
    env = envelope.make(_report(TalkTimeline(start=1.0, codes="TS")), "city-101")
    adapted = json.loads(envelope.encode(env, peer_minor=OLDEST_MINOR))
    assert "talk" not in adapted["body"]
    jsonschema.validate(adapted["body"], SHAPES["bodies"]["lesson.report"])
    # And 0.5's schema would have refused it with the timeline in.
    with pytest.raises(jsonschema.ValidationError, match="talk"):
        jsonschema.validate(
            json.loads(envelope.encode(env))["body"], SHAPES["bodies"]["lesson.report"]
        )
