"""The agent keeps its upload token in its state directory, readable by it alone from the
moment the file exists, and takes rotated tokens from the controller."""

from __future__ import annotations

import os
import pathlib
import stat

import zmq

from edge_agent.daemon import AgentDaemon
from edge_agent.identity import Identity
from edge_agent.profile import Device, HardwareProfile, LoadedProfile
from edge_agent.uploads.credentials import CREDENTIALS_FILE, CredentialStore, UploadCredentials
from protocols import envelope
from protocols.messages import CommandAck, RegisterAck, UploadTokenUpdate


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_file_is_0600_from_creation_and_survives_a_restart(tmp_path: pathlib.Path) -> None:
    old_umask = os.umask(0)  # a careless service manager: nothing masked
    try:
        # A stale temporary file with a wide mode must not be reused for the secret.
        (tmp_path / "upload_token.tmp").write_text("{}")
        (tmp_path / "upload_token.tmp").chmod(0o666)
        store = CredentialStore(tmp_path)
        assert store.current is None
        store.save(UploadCredentials("http://controller:7780", "first-token-" + "x" * 32))
        path = tmp_path / CREDENTIALS_FILE
        assert _mode(path) == 0o600
        store.update_token("rotated-token-" + "y" * 32)
        assert _mode(path) == 0o600
    finally:
        os.umask(old_umask)
    again = CredentialStore(tmp_path)  # the agent restarted
    assert again.current == UploadCredentials("http://controller:7780", "rotated-token-" + "y" * 32)
    assert not (tmp_path / "upload_token.tmp").exists()


def test_a_damaged_file_waits_for_the_controller(tmp_path: pathlib.Path) -> None:
    (tmp_path / CREDENTIALS_FILE).write_text("not json")
    assert CredentialStore(tmp_path).current is None


async def test_the_daemon_keeps_the_registration_token_and_takes_rotations(
    tmp_path: pathlib.Path,
) -> None:
    server_pub, _ = zmq.curve_keypair()
    pub, sec = zmq.curve_keypair()
    identity = Identity("c1", "tcp://127.0.0.1:1", server_pub.decode(), pub.decode(), sec.decode())
    mic = Device(name="mic", kind="microphone", role="room", driver="synthetic", bitrate=48000)
    profile = HardwareProfile(name="creds-test", devices=[mic])
    state = tmp_path / "state"
    agent = AgentDaemon(state, identity, LoadedProfile(path="x.toml", profile=profile, digest="0"))
    assert agent._upload_credentials() is None  # nothing yet: no upload is tried
    agent.link.register_ack = RegisterAck(
        heartbeat_interval_s=1.0,
        upload_url="http://controller:7780",
        upload_token="r" * 43,
        server_time=0.0,
    )
    assert agent._upload_credentials() == ("http://controller:7780", "r" * 43)
    env = envelope.make(UploadTokenUpdate(upload_token="n" * 43, grace_s=3600), "controller")
    reply = await agent._on_command(env)
    assert isinstance(reply, CommandAck) and reply.ok, reply
    assert agent._upload_credentials() == ("http://controller:7780", "n" * 43)
    assert _mode(state / CREDENTIALS_FILE) == 0o600
    assert CredentialStore(state).current == UploadCredentials("http://controller:7780", "n" * 43)
