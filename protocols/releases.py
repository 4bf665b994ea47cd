"""Agent releases (staged agent updates): what is signed, how it is checked, and the two
documents the agent and the controller exchange about an update.

A release is a wheel plus a detached Ed25519 signature made with the release key, which
is kept off the controller: the controller and the agents hold only its public key. What
is signed is a short statement naming the wheel's file name (which carries its version)
and its SHA-256, so a controller cannot pass one release's signature off for another.

The agent asks ``GET /api/v1/agent/update`` (its upload token and ``X-Classroom``) and,
when offered a release, fetches ``GET /api/v1/agent/releases/{version}/wheel``, checks the
signature with its own copy of the public key, installs, restarts, and reports its
progress with ``POST /api/v1/agent/update/report``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

RINGS: tuple[str, ...] = ("pilot", "early", "general")  # in rollout order
DEFAULT_RING = "general"
# A release's version: what a wheel file name may carry (PEP 440, no '-').
VERSION_PATTERN = r"^[0-9][0-9A-Za-z.+!]{0,63}$"
WHEEL_NAME = re.compile(r"^classbridge-(?P<version>[0-9][0-9A-Za-z.+!]*)-py3-none-any\.whl$")
MAX_WHEEL_BYTES = 64 * 1024 * 1024  # far above the agent's wheel (a few MB)

OFFER_ROUTE = "/api/v1/agent/update"
WHEEL_ROUTE = "/api/v1/agent/releases/{version}/wheel"
REPORT_ROUTE = "/api/v1/agent/update/report"


class ReleaseSignatureError(ValueError):
    """A release's signature does not verify, or a key or signature is malformed."""


def statement(filename: str, sha256: str) -> bytes:
    """The bytes the release key signs for one wheel."""
    return f"classbridge-agent-release/1\n{filename}\n{sha256}\n".encode()


def wheel_version(filename: str) -> str:
    """The version in a classbridge wheel's file name; ValueError names the expected form."""
    match = WHEEL_NAME.match(filename)
    if match is None:
        raise ValueError(
            f"{filename!r} is not a classbridge agent wheel: expected "
            "classbridge-<version>-py3-none-any.whl"
        )
    return match["version"]


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def load_public_key(pem: bytes, where: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ReleaseSignatureError names ``where`` it came from."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as err:
        raise ReleaseSignatureError(f"{where}: not a PEM public key ({err})") from err
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseSignatureError(f"{where}: not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name of a release public key (SHA-256 of its raw bytes, 16 hex)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: Ed25519PrivateKey, filename: str, wheel: bytes) -> str:
    """The detached signature of a wheel (base64), as the release machine makes it."""
    return base64.b64encode(private_key.sign(statement(filename, sha256_hex(wheel)))).decode()


def verify(public_key: Ed25519PublicKey, filename: str, sha256: str, signature_b64: str) -> None:
    """Raise ReleaseSignatureError unless ``signature_b64`` is the release key's signature
    of the wheel named ``filename`` with this SHA-256."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ReleaseSignatureError(f"signature of {filename} is not base64 ({err})") from err
    if len(signature) != 64:
        raise ReleaseSignatureError(
            f"signature of {filename} has {len(signature)} bytes; an Ed25519 signature has 64"
        )
    try:
        public_key.verify(signature, statement(filename, sha256))
    except InvalidSignature:
        raise ReleaseSignatureError(
            f"the signature of {filename} (sha256 {sha256[:12]}…) does not verify with release "
            f"key {key_id(public_key)}: the wheel or its signature was changed, or it was "
            "signed with another key"
        ) from None


class UpdateOffer(BaseModel):
    """The controller's answer to an agent asking for an update: the release to install."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    rollout_id: int
    version: str = Field(pattern=VERSION_PATTERN)
    filename: str = Field(max_length=255)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, le=MAX_WHEEL_BYTES)
    signature: str = Field(max_length=128)
    key_id: str = Field(max_length=64)
    # The agent must report healthy on the new version within this many seconds of
    # switching to it, or it rolls back.
    health_deadline_s: int = Field(gt=0, le=86400)


UpdateState = Literal["installing", "healthy", "rolled_back", "failed"]


class UpdateReport(BaseModel):
    """An agent's progress on an offered release."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    rollout_id: int
    version: str = Field(pattern=VERSION_PATTERN)
    state: UpdateState
    running_version: str = Field(max_length=64)  # the version of the agent reporting
    detail: str = Field(default="", max_length=4000)
    # healthy: each health check and whether it passed (registered, devices, clock).
    checks: dict[str, bool] = {}
