"""Enrolment: make a key pair, present the one-time token, keep the controller's key."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import ssl

import zmq
import zmq.asyncio

from edge_agent import __version__
from edge_agent.errors import EnrolmentFailed
from edge_agent.identity import Identity, enrol_endpoint
from edge_agent.uploads.credentials import CREDENTIALS_FILE
from protocols import envelope
from protocols.envelope import MAX_ENROL_MESSAGE_BYTES
from protocols.errors import ProtocolError
from protocols.messages import EnrolRequest, EnrolResult
from protocols.tls import pinned_client_context


def _token_parts(token: str) -> tuple[str, str]:
    # Same format as controller.agents.registry.parse_token, read here without importing the
    # controller package onto classroom PCs.
    import base64

    if not token.startswith("cb1"):
        raise EnrolmentFailed("enrolment token must start with 'cb1'; copy it again")
    body = token[3:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        classroom_id, _secret, server_key = raw.split("|")
    except (ValueError, UnicodeDecodeError) as err:
        raise EnrolmentFailed("enrolment token is damaged; copy it again") from err
    return classroom_id, server_key


async def enrol(
    controller: str, token: str, state_dir: pathlib.Path, timeout: float = 10.0
) -> Identity:
    """Enrol with the controller and store the identity; raises ``EnrolmentFailed``."""
    classroom_id, server_key = _token_parts(token)
    public, secret = zmq.curve_keypair()
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_ENROL_MESSAGE_BYTES)
    sock.curve_serverkey = server_key.encode()
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    try:
        sock.connect(enrol_endpoint(controller))
        request = EnrolRequest(
            token=token,
            public_key=public.decode(),
            hostname=socket.gethostname(),
            agent_version=__version__,
        )
        await sock.send(envelope.encode(envelope.make(request, "enrolling:" + classroom_id)))
        if not await sock.poll(timeout * 1000):
            raise EnrolmentFailed(
                f"no answer from {enrol_endpoint(controller)} in "
                f"{timeout:.0f} s; is the controller running and reachable?"
            )
        result = envelope.decode(await sock.recv()).expect(EnrolResult)
    except ProtocolError as err:
        raise EnrolmentFailed(f"controller answered with a bad message: {err}") from err
    except ValueError as err:
        raise EnrolmentFailed(str(err)) from err
    finally:
        sock.close(linger=0)
        ctx.term()
    if not result.accepted:
        raise EnrolmentFailed(f"controller refused enrolment: {result.reason}")
    try:
        pinned_client_context(result.tls_ca_pem)
    except (ssl.SSLError, ValueError) as err:
        raise EnrolmentFailed(
            f"controller sent no usable TLS certificate to pin ({err}); upgrade the "
            "controller so that it serves HTTPS, then enrol again with a new token"
        ) from err
    identity = Identity(
        classroom_id=result.classroom_id,
        controller=controller,
        controller_public_key=server_key,
        public_key=public.decode(),
        secret_key=secret.decode(),
        controller_ca_pem=result.tls_ca_pem,
        controllers=list(result.controllers),
    )
    identity.save(state_dir)
    # The controller revoked the old enrolment's upload tokens; forget ours.
    (state_dir / CREDENTIALS_FILE).unlink(missing_ok=True)
    return identity


def enrol_blocking(controller: str, token: str, state_dir: pathlib.Path) -> Identity:
    """``enrol`` for synchronous callers such as the CLI."""
    return asyncio.run(enrol(controller, token, state_dir))
