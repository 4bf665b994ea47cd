"""What the agent refuses before installing anything: a wheel whose bytes are not the
offered ones, a signature by another key, a file name that does not carry the version."""

from __future__ import annotations

import pathlib

import pytest
from release_fixtures import build_wheel, make_key, sign_wheel

from edge_agent.updates.installer import UpdateError, check_wheel
from protocols.releases import UpdateOffer, load_public_key, sha256_hex


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[UpdateOffer, bytes, pathlib.Path]:
    root = tmp_path_factory.mktemp("wheel")
    private, public = make_key(root / "key")
    wheel = build_wheel(root, "0.4.0")
    data = wheel.read_bytes()
    offer = UpdateOffer(
        rollout_id=1,
        version="0.4.0",
        filename=wheel.name,
        sha256=sha256_hex(data),
        size=len(data),
        signature=sign_wheel(wheel, private).read_text(),
        key_id="k",
        health_deadline_s=60,
    )
    return offer, data, public


def test_the_signed_wheel_passes(signed: tuple[UpdateOffer, bytes, pathlib.Path]) -> None:
    offer, data, public = signed
    check_wheel(offer, data, load_public_key(public.read_bytes(), "key"))


def test_changed_bytes_are_refused(signed: tuple[UpdateOffer, bytes, pathlib.Path]) -> None:
    offer, data, public = signed
    key = load_public_key(public.read_bytes(), "key")
    with pytest.raises(UpdateError, match="the offer said"):
        check_wheel(offer, data + b"x", key)
    # A controller that changed the wheel and its hash: the signature still refuses it.
    changed = data + b"x"
    forged = offer.model_copy(update={"sha256": sha256_hex(changed), "size": len(changed)})
    with pytest.raises(UpdateError, match="does not verify with release key"):
        check_wheel(forged, changed, key)


def test_another_key_and_a_wrong_name_are_refused(
    signed: tuple[UpdateOffer, bytes, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    offer, data, _ = signed
    _, other = make_key(tmp_path / "other")
    with pytest.raises(UpdateError, match="signed with another key"):
        check_wheel(offer, data, load_public_key(other.read_bytes(), "other"))
    renamed = offer.model_copy(update={"version": "0.5.0"})
    with pytest.raises(UpdateError, match=r"does not carry version 0\.5\.0"):
        check_wheel(renamed, data, load_public_key(other.read_bytes(), "other"))
    bad = offer.model_copy(update={"signature": "not base64!"})
    with pytest.raises(UpdateError, match="not base64"):
        check_wheel(bad, data, load_public_key(other.read_bytes(), "other"))
