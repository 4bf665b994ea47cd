"""GET /api/v1/metrics: what a Prometheus scraper with a technician's token reads."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

from helpers import REPO, bearer_headers, loopback_server_tls, loopback_session
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.agents.keys import ServerKeys
from controller.agents.registry import add_classroom
from controller.app.http_api import HttpApi
from controller.auth.accounts import add_user, create_api_token
from controller.db.models import Classroom, ConsoleUser
from controller.db.session import make_engine, migrate, sessions
from controller.lessons.scheduling import schedule_lesson
from controller.recordings.uploads import UploadService
from controller.storage.local import LocalStorage

HEALTH = {
    "seq": 7,
    "cpu_pct": 41.5,
    "mem_pct": 20.0,
    "disk_free_bytes": 10**10,
    "disk_pct": 40.0,
    "uploads_pending_bytes": 123456,
    "media": [
        {
            "track": "teacher",
            "direction": "send",
            "fps": 29.5,
            "bitrate_bps": 1.9e6,
            "loss_pct": 0.5,
            "rtt_ms": 12.0,
        },
        {
            "track": "b-student",
            "direction": "recv",
            "fps": 30.0,
            "bitrate_bps": 6e5,
            "loss_pct": None,
            "rtt_ms": None,
        },
    ],
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_technicians_scraper_reads_the_fleet_and_others_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    migrate(url)
    db: sessionmaker[Session] = sessions(make_engine(url))
    keys = ServerKeys.load_or_create(tmp_path)
    t0 = datetime.now(UTC) + timedelta(hours=1)
    with db() as s:
        add_classroom(s, "a", "City 101", "city", keys.public)
        add_classroom(s, "b", "Village 201", "village", keys.public)
        room = s.get(Classroom, "a")
        assert room is not None
        room.health = HEALTH
        s.commit()
        schedule_lesson(s, "a", ["b"], t0, t0 + timedelta(minutes=40))
    uploads = UploadService(db, LocalStorage(tmp_path / "storage"), lambda a, b: None)
    http = HttpApi(db, uploads, keys, lambda: ["a"])
    await http.start("127.0.0.1", 0, tls=loopback_server_tls())
    base = f"https://127.0.0.1:{http.port}"
    try:
        async with loopback_session(headers=bearer_headers(db, "technician")) as client:
            async with client.get(f"{base}/api/v1/lessons") as r:  # timed below
                assert r.status == 200
            async with client.get(f"{base}/metrics") as r:  # the usual path redirects
                assert r.status == 200 and r.url.path == "/api/v1/metrics"
                assert r.headers["Content-Type"].startswith("text/plain")
                got = samples(await r.text())
        with db() as s:  # the village school's own technician: its classrooms only
            add_user(s, "village-it", "technician", None)
            user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == "village-it"))
            assert user is not None
            user.school = "village"
            s.commit()
            village = {"Authorization": f"Bearer {create_api_token(s, 'village-it')}"}
        async with (
            loopback_session(headers=village) as client,
            client.get(f"{base}/api/v1/metrics") as r,
        ):
            assert r.status == 200
            theirs = samples(await r.text())
        teacher_headers = bearer_headers(db, "teacher")
        for headers, refused in ((teacher_headers, 403), ({}, 401)):
            async with (
                loopback_session(headers=headers) as client,
                client.get(f"{base}/api/v1/metrics") as r,
            ):
                assert r.status == refused
    finally:
        await http.stop()
    assert got[("classbridge_agents_online", ())] == 1
    assert got[("classbridge_classrooms", ())] == 2
    assert got[("classbridge_lessons", (("state", "scheduled"),))] == 1
    assert got[("classbridge_lessons", (("state", "live"),))] == 0
    room = (("classroom", "a"), ("school", "city"))
    assert got[("classbridge_agent_uploads_pending_bytes", room)] == 123456
    teacher = tuple(sorted((*room, ("direction", "send"), ("track", "teacher"))))
    assert got[("classbridge_track_fps", teacher)] == 29.5
    assert got[("classbridge_track_rtt_ms", teacher)] == 12.0
    student = tuple(sorted((*room, ("direction", "recv"), ("track", "b-student"))))
    assert ("classbridge_track_loss_pct", student) not in got  # not measured: not invented
    lessons_route = (("method", "GET"), ("route", "/api/v1/lessons"), ("status", "2xx"))
    assert got[("classbridge_api_request_seconds_count", lessons_route)] == 1
    # An offline classroom's last heartbeat is history, not a current figure.
    assert not any(labels and dict(labels).get("classroom") == "b" for _, labels in got)
    assert theirs[("classbridge_classrooms", ())] == 1
    assert theirs[("classbridge_agents_online", ())] == 0  # city's agent is not theirs
    assert theirs[("classbridge_lessons", (("state", "scheduled"),))] == 0  # city leads it
    assert not any(name.startswith("classbridge_api_") for name, _ in theirs)
    assert not any(labels and dict(labels).get("classroom") == "a" for _, labels in theirs)


def test_the_grafana_dashboard_reads_only_metrics_the_controller_exposes() -> None:
    """The dashboard shipped beside the route cannot drift from it: every metric its
    queries name is one the collector or the latency histogram produces."""
    import json
    import re

    from controller.metrics import collector

    doc = json.loads((REPO / "controller" / "metrics" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    named = {m for e in exprs for m in re.findall(r"classbridge_[a-z_]+", e)}
    source = pathlib.Path(collector.__file__).read_text()
    exposed = {f"classbridge_{n}" for n in re.findall(r'f"\{PREFIX\}_([a-z_]+)"', source)}
    exposed |= {f"classbridge_{n}" for n, _, _ in collector.TRACK_FIGURES}
    exposed |= {f"classbridge_{n}" for n in re.findall(r'_gauge\(\s*"([a-z_]+)"', source)}
    exposed |= {"classbridge_api_request_seconds_bucket"}
    assert named and named <= exposed, named - exposed
