"""Upload tokens on a real controller: random per enrolment and stored hashed, revoked by
re-enrolment (which also raises an alert and an audit row) and by the CLI, rotated over
the authenticated control channel with a grace for the token it replaces."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import pathlib
import time
from datetime import timedelta

import pytest
from helpers import https_session
from helpers import issue_token as issue_token_for
from sqlalchemy import select
from typer.testing import CliRunner

from controller.app.cli import app
from controller.app.daemon import ControllerDaemon
from controller.db.models import AlertState, AuditEntry, UploadToken
from controller.db.session import utcnow
from controller.recordings import upload_tokens
from controller.tls.probe import state_trust_pem
from edge_agent.enrol import enrol
from edge_agent.errors import UploadFailed
from edge_agent.identity import Identity
from edge_agent.link import ControlLink
from edge_agent.uploads.client import UploadApi
from protocols import envelope
from protocols.messages import Body, CommandAck, Heartbeat, Register, UploadTokenUpdate
from protocols.tls import pinned_client_context

pytestmark = pytest.mark.timeout(60)


class Agent:
    """A control link that keeps every upload token it is given, as the agent does."""

    def __init__(self, identity: Identity, accept: bool = True) -> None:
        self.identity = identity
        self.accept = accept
        self.rotated: list[str] = []
        self.link = ControlLink(
            identity, self._register, self._heartbeat, self._command, heartbeat_interval=0.3
        )

    def _register(self) -> Register:
        return Register(
            classroom_id=self.identity.classroom_id,
            agent_version="test",
            profile_name="synthetic",
            profile_digest="0" * 64,
            inventory=[],
        )

    @staticmethod
    def _heartbeat(seq: int) -> Heartbeat:
        return Heartbeat(seq=seq, cpu_pct=1, mem_pct=1, disk_free_bytes=1, disk_pct=1)

    async def _command(self, env: envelope.Envelope) -> Body:
        if isinstance(env.body, UploadTokenUpdate) and self.accept:
            self.rotated.append(env.body.upload_token)
            return CommandAck(command=env.type, ok=True)
        return CommandAck(command=env.type, ok=False, error="not taken")

    @property
    def token(self) -> str:
        """The newest token: the last rotation's, else the registration's."""
        if self.rotated:
            return self.rotated[-1]
        assert self.link.register_ack is not None
        return self.link.register_ack.upload_token

    @property
    def upload_url(self) -> str:
        """Where the controller told the agent to upload."""
        assert self.link.register_ack is not None
        return self.link.register_ack.upload_url


async def _connected(
    controller: ControllerDaemon, tmp_path: pathlib.Path, classroom: str, accept: bool = True
) -> Agent:
    token = issue_token_for(controller.config.state_dir, classroom)
    endpoint = f"tcp://127.0.0.1:{controller.config.control_port}"
    agent = Agent(await enrol(endpoint, token, tmp_path / classroom), accept)
    await agent.link.start()
    await asyncio.wait_for(agent.link.registered.wait(), 5)
    return agent


async def _accepted(controller: ControllerDaemon, url: str, classroom: str, token: str) -> bool:
    """Whether the upload API takes ``token`` (the lesson does not exist: an accepted
    token gets 404, a refused one 401), over HTTPS pinned to the controller's CA."""
    trust = state_trust_pem(controller.config.state_dir)
    async with https_session(trust) as http:
        try:
            await UploadApi(http, url, classroom, token, pinned_client_context(trust)).open(
                "nope", "t/x.mp4", 1, "0" * 64
            )
        except UploadFailed as err:
            if "HTTP 401" in str(err):
                return False
            assert "HTTP 404" in str(err), err
            return True
    raise AssertionError("an upload to a lesson that does not exist was opened")


def _rows(controller: ControllerDaemon, classroom: str) -> list[UploadToken]:
    assert controller.messages is not None
    with controller.messages._sessions() as db:
        return list(db.scalars(select(UploadToken).where(UploadToken.classroom_id == classroom)))


async def test_tokens_are_random_stored_hashed_and_not_derived_from_the_curve_key(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    agent = await _connected(controller, tmp_path, "city-201")
    try:
        token = agent.token
        assert await _accepted(controller, agent.upload_url, "city-201", token)
        # Another classroom's id with this token, or the token of the old scheme (an HMAC
        # of the id under the controller's CURVE secret), is refused.
        assert controller.hub is not None
        secret = controller.hub._keys.secret
        old_scheme = hmac.new(secret, b"city-201", hashlib.sha256).hexdigest()
        assert not await _accepted(controller, agent.upload_url, "city-201", old_scheme)
        assert not await _accepted(controller, agent.upload_url, "city-202", token)
        # Only the SHA-256 is kept.
        [row] = _rows(controller, "city-201")
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
        # Registering again (a reconnect) gives a new random token; the old one is retired
        # after the grace, not at once.
        agent.link.registered.clear()
        await asyncio.wait_for(agent.link.registered.wait(), 5)
        assert agent.token != token and len(agent.token) >= 43
        assert await _accepted(controller, agent.upload_url, "city-201", token)
        old = next(r for r in _rows(controller, "city-201") if r.token_hash == row.token_hash)
        assert old.retire_at is not None
    finally:
        await agent.link.stop()


async def test_re_enrolment_revokes_tokens_and_raises_an_alert_and_an_audit_row(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    agent = await _connected(controller, tmp_path, "city-203")
    url, token = agent.upload_url, agent.token
    await agent.link.stop()
    assert await _accepted(controller, url, "city-203", token)
    # The classroom is given a new enrolment token, and another box enrols with it.
    fresh = issue_token_for(controller.config.state_dir, "city-203")
    await enrol(f"tcp://127.0.0.1:{controller.config.control_port}", fresh, tmp_path / "other")
    assert not await _accepted(controller, url, "city-203", token)
    assert controller.messages is not None
    with controller.messages._sessions() as db:
        alert = db.scalar(
            select(AlertState).where(
                AlertState.classroom_id == "city-203", AlertState.key == "key_replaced"
            )
        )
        assert alert is not None and alert.active and "enrolled again" in alert.message
        audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "classroom_key_replaced"))
        assert audit is not None and audit.target == "city-203"
        assert set(audit.detail) >= {"old_key", "new_key", "hostname"}


async def test_rotation_hands_a_fresh_token_and_keeps_the_old_one_for_the_grace(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    agent = await _connected(controller, tmp_path, "city-204")
    rotator = controller.token_rotator
    assert rotator is not None
    try:
        first = agent.token
        assert await rotator.rotate_due() == []  # a fresh token is not due yet
        rotator.rotation = timedelta(0)
        assert await rotator.rotate_due() == ["city-204"]
        second = agent.token
        assert second != first and agent.rotated == [second]
        assert await _accepted(controller, agent.upload_url, "city-204", second)
        assert await _accepted(controller, agent.upload_url, "city-204", first)  # within the grace
        assert controller.messages is not None
        with controller.messages._sessions() as db:
            after_grace = utcnow() + rotator.grace + timedelta(seconds=1)
            assert not upload_tokens.check(db, "city-204", first, after_grace)
            assert upload_tokens.check(db, "city-204", second, after_grace)
    finally:
        await agent.link.stop()


async def test_a_token_the_agent_does_not_take_is_withdrawn(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    agent = await _connected(controller, tmp_path, "city-205", accept=False)
    try:
        first = agent.token
        assert controller.token_rotator is not None
        controller.token_rotator.rotation = timedelta(0)
        assert await controller.token_rotator.rotate_due() == []
        [row] = _rows(controller, "city-205")  # only the first, still current
        assert row.retire_at is None
        # Not asked again every tick (an older agent build never takes one).
        assert "city-205" not in await asyncio.to_thread(controller.token_rotator._due)
        assert await _accepted(controller, agent.upload_url, "city-205", first)
    finally:
        await agent.link.stop()


async def test_cli_revocation_stops_a_token_at_once_and_the_agent_gets_a_fresh_one(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    agent = await _connected(controller, tmp_path, "city-206")
    try:
        leaked = agent.token
        state = ["--state-dir", str(controller.config.state_dir)]
        out = CliRunner().invoke(app, ["classroom", "revoke-upload-token", "city-206", *state])
        assert out.exit_code == 0 and "revoked 1 upload token" in out.output, out.output
        assert not await _accepted(controller, agent.upload_url, "city-206", leaked)
        out = CliRunner().invoke(app, ["classroom", "revoke-upload-token", "nowhere", *state])
        assert out.exit_code == 2 and "does not exist" in out.output
        # The next rotation round finds the classroom without a token and sends one.
        assert controller.token_rotator is not None
        started = time.monotonic()
        assert await controller.token_rotator.rotate_due() == ["city-206"]
        assert time.monotonic() - started < 5
        assert agent.token != leaked
        assert await _accepted(controller, agent.upload_url, "city-206", agent.token)
    finally:
        await agent.link.stop()


def test_the_fleet_s_newest_tokens_come_from_one_query(db_url: str) -> None:
    """The rotator's view of the fleet: each classroom's newest current token, retired ones
    left out, a classroom with none absent (so it is due), on both engines."""
    from controller.db.models import Classroom
    from controller.db.session import make_engine, migrate, sessions

    migrate(db_url)
    factory = sessions(make_engine(db_url))
    t0 = utcnow().replace(microsecond=0)
    with factory() as db:
        for cid in ("a", "b", "c"):
            db.add(Classroom(id=cid, name=cid, school="S", inventory=[], health={}))
        db.commit()
        upload_tokens.issue(db, "a", t0 - timedelta(days=3))
        upload_tokens.issue(db, "a", t0 - timedelta(days=1))
        upload_tokens.issue(db, "b", t0 - timedelta(hours=1))  # newer, but retired below
        newest_b = upload_tokens.issue(db, "b", t0 - timedelta(hours=2))
        upload_tokens.retire_others(db, "b", newest_b, timedelta(minutes=5))
        retired = upload_tokens.issue(db, "c", t0)
        upload_tokens.revoke(db, "c")
        assert retired
        newest = upload_tokens.newest_issues(db)
        assert newest == {"a": t0 - timedelta(days=1), "b": t0 - timedelta(hours=2)}
        for cid in ("a", "b", "c"):
            assert newest.get(cid) == upload_tokens.newest_issue(db, cid)
