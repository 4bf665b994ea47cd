"""Regenerates tests/protocols/golden/messages.jsonl (run by hand when the protocol changes)."""

from __future__ import annotations

import pathlib

from protocols import envelope
from protocols.envelope import Envelope
from protocols.messages import (
    ActionResult,
    AgentAction,
    CommandAck,
    DeviceInfo,
    DeviceState,
    EnrolRequest,
    EnrolResult,
    ErrorReply,
    FloorRequest,
    FloorState,
    Heartbeat,
    HeartbeatAck,
    JanusPlacement,
    JoinLesson,
    LeaveLesson,
    LessonReport,
    Register,
    RegisterAck,
    RoomLabel,
    ScheduleUpdate,
    SdpAnswer,
    SdpOffer,
    StartRecording,
    StopRecording,
    Subscription,
    TrackMid,
    TrackReport,
    TrackStats,
    UploadTokenUpdate,
)
from protocols.network_profile import NetworkProfile, Rung
from protocols.version import PROTOCOL_MINOR

KEY = "rq:rhf/+b5ZbDuV(A0Yt3y@>cwz@nX1K6t(N]<x}"
# A county CA a controller made (controller/tls/ca.py), pinned by agents at enrolment.
COUNTY_CA = (pathlib.Path(__file__).parent / "golden" / "county-ca.pem").read_text()
BODIES = [
    EnrolRequest(
        token="cb1Y2l0eS0xfHNlY3JldHxrZXk", public_key=KEY, hostname="pc-101", agent_version="0.1.0"
    ),
    EnrolResult(accepted=True, classroom_id="city-101"),
    Register(
        classroom_id="city-101",
        agent_version="0.1.0",
        profile_name="synthetic",
        profile_digest="0" * 64,
        inventory=[
            DeviceInfo(
                name="teacher",
                kind="camera",
                driver="synthetic",
                role="teacher",
                width=1280,
                height=720,
                fps=30,
                bitrate=2000000,
            )
        ],
        active_lesson_id=None,
    ),
    RegisterAck(
        heartbeat_interval_s=2.0,
        upload_url="http://127.0.0.1:7780",
        upload_token="f" * 64,
        server_time=1795000000.5,
    ),
    Heartbeat(
        seq=7,
        cpu_pct=12.5,
        mem_pct=40.0,
        disk_free_bytes=10**11,
        disk_pct=20.0,
        temperature_c=None,
        devices={"teacher": DeviceState(state="ok")},
        media=[TrackStats(track="teacher", direction="send", frames=300, bytes=10**6)],
        lesson_id="abc",
    ),
    HeartbeatAck(seq=7, server_time=1795000001.25),
    JoinLesson(
        lesson_id="abc",
        role="receiver",
        publish=["student", "mic"],
        subscribe=[
            Subscription(
                source_classroom="city-101", track="teacher", kind="video", width=1280, height=720
            )
        ],
        start_at=1795000010.0,
        end_at=1795002710.0,
    ),
    LeaveLesson(lesson_id="abc", reason="lesson ended"),
    StartRecording(lesson_id="abc"),
    StopRecording(lesson_id="abc", upload=True),
    CommandAck(command="cmd.join", ok=False, error="camera teacher lost"),
    SdpOffer(
        lesson_id="abc",
        sdp="v=0\r\n",
        tracks=[
            TrackMid(
                mid="0",
                track="teacher",
                kind="video",
                direction="send",
                source_classroom="city-101",
            )
        ],
    ),
    SdpAnswer(lesson_id="abc", sdp="v=0\r\n"),
    LessonReport(
        lesson_id="abc",
        tracks=[
            TrackReport(
                track="teacher",
                kind="video",
                direction="recv",
                source_classroom="city-101",
                frames=598,
                first_counter=100,
                last_counter=699,
                latency_p50_ms=80.0,
                latency_p95_ms=120.0,
                counter_ranges=[(100, 400), (403, 699)],
            )
        ],
    ),
    ErrorReply(code="malformed", message="not UTF-8 JSON"),
    ScheduleUpdate(
        lessons=[
            JoinLesson(
                lesson_id="abc",
                role="lead",
                publish=["teacher"],
                subscribe=[],
                start_at=1795000010.0,
                end_at=1795002710.0,
            )
        ],
        horizon_s=1209600.0,
    ),
    # Appended last so the entries above keep their ids: an ack carrying a network profile.
    RegisterAck(
        heartbeat_interval_s=2.0,
        upload_url="http://127.0.0.1:7780",
        upload_token="f" * 64,
        server_time=1795000000.5,
        network_profile=NetworkProfile(
            name="county-vlan120",
            vlan_id=120,
            subnet="10.20.30.0/24",
            uplink_kbps=20000,
            classroom_cap_kbps=6000,
            ladder=(
                Rung(name="1080p", width=1920, height=1080, kbps=4000),
                Rung(name="720p", width=1280, height=720, kbps=2000),
            ),
        ).model_dump(mode="json"),
    ),
    AgentAction(action="ptz", camera="teacher", preset="board"),
    ActionResult(action="doctor", ok=False, output="FAIL  device teacher", data={"failed": 1}),
    # Floor control (课堂互动), and a join that names the rooms and carries the floor.
    FloorState(
        lesson_id="abc",
        seq=3,
        speaking="village-2",
        muted=["village-3"],
        duck_db=-18.0,
        by="console:teacher",
    ),
    FloorRequest(lesson_id="abc", speaking="village-2", muted=[]),
    JoinLesson(
        lesson_id="abc",
        role="lead",
        publish=["teacher", "panel", "mic"],
        subscribe=[
            Subscription(
                source_classroom="village-2", track="student", kind="video", role="student"
            ),
            Subscription(source_classroom="village-2", track="mic", kind="audio"),
        ],
        start_at=1795000010.0,
        end_at=1795002710.0,
        rooms=[
            RoomLabel(classroom_id="city-101", school="实验小学", name="录播教室 1"),
            RoomLabel(classroom_id="village-2", school="中心小学", name="录播教室"),
        ],
        floor=FloorState(lesson_id="abc", seq=1, speaking="village-2"),
    ),
    # Upload token rotation: the controller pushes a fresh token; the old one has a grace.
    UploadTokenUpdate(upload_token="u" * 43, grace_s=3600.0),
    # TLS by default: an accepted enrolment carries the certificate the agent pins.
    EnrolResult(accepted=True, classroom_id="city-101", tls_ca_pem=COUNTY_CA),
    # The media plane on Janus: the join names the room (never its secret).
    JoinLesson(
        lesson_id="abc",
        role="receiver",
        publish=["student", "mic"],
        subscribe=[Subscription(source_classroom="city-101", track="teacher", kind="video")],
        start_at=1795000010.0,
        end_at=1795002710.0,
        media=JanusPlacement(
            api_url="http://10.20.0.5:8088/janus", room=4242, pin="p1n", instance="county-a"
        ),
    ),
]


def golden_envelopes() -> list[Envelope]:
    """Fixed envelopes (ids and times pinned) for every message type."""
    return [
        Envelope(
            v=1,
            m=PROTOCOL_MINOR,
            type=b.TYPE,
            id=f"{i:032x}",
            correlation_id=None if i % 2 else "c" * 32,
            sender="city-101",
            ts=1795000000.0 + i,
            body=b,
        )
        for i, b in enumerate(BODIES)
    ]


if __name__ == "__main__":
    out = pathlib.Path(__file__).parent / "golden" / "messages.jsonl"
    out.write_bytes(b"\n".join(envelope.encode(e) for e in golden_envelopes()) + b"\n")
    print(f"wrote {out}")
