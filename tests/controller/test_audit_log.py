"""The audit log is append-only, kept at least 183 days, and sent to a syslog collector."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from controller.app.daemon import ControllerConfig
from controller.auth import audit
from controller.auth.audit_syslog import AuditSyslog, Rfc5424Formatter, SyslogTarget
from controller.db.models import AuditEntry
from controller.db.session import make_engine, migrate, sessions, utcnow


@pytest.fixture
def db(db_url: str) -> sessionmaker[Session]:
    url = db_url
    migrate(url)
    return sessions(make_engine(url))


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    """A syslog collector: a UDP socket on loopback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    try:
        yield sock
    finally:
        sock.close()


def _old_row(s: Session, days: int) -> None:
    s.execute(
        insert(AuditEntry).values(
            ts=utcnow() - timedelta(days=days), username="old", role="admin", action="x"
        )
    )
    s.commit()


def test_rows_cannot_be_changed_or_deleted(db: sessionmaker[Session]) -> None:
    with db() as s:
        audit.record(s, "play_recording", username="li", target="/api/v1/recordings/L/c/t.mp4")
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(update(AuditEntry).values(username="someone else"))
        s.rollback()
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(delete(AuditEntry))
        s.rollback()
        # Not through raw SQL either, nor by backdating a row so that it may be pruned.
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("UPDATE audit_log SET ts = '2000-01-01 00:00:00'"))
        s.rollback()
        assert [r.username for r in s.scalars(select(AuditEntry))] == ["li"]


def test_prune_deletes_only_rows_past_the_retention_and_never_under_183_days(
    db: sessionmaker[Session],
) -> None:
    with db() as s:
        for days in (400, 200, 100):
            _old_row(s, days)
        audit.record(s, "sign_in", username="new")
        with pytest.raises(ValueError, match="at least 183 days"):
            audit.prune(s, keep_days=30)
        assert audit.prune(s, keep_days=365) == 1
        assert audit.prune(s) == 1  # the default is the floor, 183 days
        left = sorted(r.username for r in s.scalars(select(AuditEntry)))
        assert left == ["new", "old"]
        # The database holds the floor even for code that skips prune().
        with pytest.raises(DatabaseError, match="older than 183 days"):
            s.execute(delete(AuditEntry).where(AuditEntry.username == "old"))


def test_syslog_target_parsing() -> None:
    assert SyslogTarget.parse("udp://10.0.0.5:514").address == ("10.0.0.5", 514)
    assert SyslogTarget.parse("unix:/dev/log").address == "/dev/log"
    for bad, words in (
        ("udp://host", "udp://HOST:PORT"),
        ("udp://host:99999", "udp://HOST:PORT"),
        ("unix:dev/log", "absolute"),
        ("tcp://h:1", "use udp://"),
    ):
        with pytest.raises(ValueError, match=words):
            SyslogTarget.parse(bad)
    with pytest.raises(ValueError, match="at least 183"):
        ControllerConfig(state_dir=pathlib.Path("/tmp/x"), audit_keep_days=90)
    with pytest.raises(ValueError, match="udp://"):
        ControllerConfig(state_dir=pathlib.Path("/tmp/x"), audit_syslog="syslog.example")


def test_each_row_reaches_a_udp_syslog_collector_as_rfc5424(
    db: sessionmaker[Session], receiver: socket.socket
) -> None:
    port = receiver.getsockname()[1]
    forwarder = AuditSyslog(SyslogTarget.parse(f"udp://127.0.0.1:{port}"), hostname="ctl")
    forwarder.start()
    try:
        with db() as s:
            audit.record(
                s,
                "play_recording",
                username="li.wei",
                role="technician",
                target='/api/v1/recordings/L1/c"1]/teacher.mp4',
                detail={"status": 206, "bytes": 1000},
                remote="10.1.2.3",
            )
        message = receiver.recv(65536).decode()
    finally:
        forwarder.stop()
    # <PRI> = authpriv (10) * 8 + info (6) = 86; version 1; host; app; procid; msgid.
    head, sd_and_msg = message.split(" [", 1)
    pri_version, stamp, host, app, _procid, msgid = head.split(" ")
    assert pri_version == "<86>1" and host == "ctl" and app == "classbridge" and msgid == "audit"
    assert stamp.endswith("+00:00") and stamp.startswith(str(utcnow().year))
    sd, msg = sd_and_msg.split("] ", 1)
    assert sd.startswith("classbridge@32473 id=")
    assert 'user="li.wei" role="technician" action="play_recording"' in sd
    assert 'target="/api/v1/recordings/L1/c\\"1\\]/teacher.mp4"' in sd  # escaped
    assert 'remote="10.1.2.3"' in sd
    assert msg == '{"bytes": 1000, "status": 206}'


def test_formatter_names_the_host_without_domain() -> None:
    assert Rfc5424Formatter("ctl.county.local")._host == "ctl"
