"""Make the agent release key and sign agent wheels, on the release machine (never on the
controller: it and the agents hold only the public key).

    scripts/release-key new --out DIR           # DIR/release.key (private, 0600) and
                                                # DIR/release.pub (public)
    scripts/release-key sign --key FILE WHEEL   # writes WHEEL.sig (base64, detached)
    scripts/release-key verify --public-key FILE WHEEL [--signature FILE]

The public key goes to the controller (``classroom-controller release trust-key``) and to
every agent (/etc/classbridge/release.pub, as install-agent puts it).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.releases import (
    ReleaseSignatureError,
    key_id,
    load_public_key,
    sha256_hex,
    sign,
    verify,
    wheel_version,
)


def keygen(folder: pathlib.Path) -> int:
    """Write a new key pair; refuse to overwrite one."""
    private, public = folder / "release.key", folder / "release.pub"
    if private.exists():
        print(f"error: {private} exists; a release key is made once", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    print(f"release key {key_id(key.public_key())}: private {private}, public {public}")
    return 0


def sign_wheel(wheel: pathlib.Path, key_file: pathlib.Path) -> int:
    """Write WHEEL.sig."""
    try:
        wheel_version(wheel.name)
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not isinstance(key, Ed25519PrivateKey):
        print(f"error: {key_file} is not an Ed25519 private key", file=sys.stderr)
        return 2
    try:
        data = wheel.read_bytes()
    except OSError as err:
        print(f"error: cannot read the wheel to sign: {err}", file=sys.stderr)
        return 2
    out = wheel.with_name(wheel.name + ".sig")
    out.write_text(sign(key, wheel.name, data) + "\n")
    print(f"signed {wheel.name} with release key {key_id(key.public_key())}: {out}")
    return 0


def verify_wheel(wheel: pathlib.Path, public: pathlib.Path, signature: pathlib.Path | None) -> int:
    """Check a wheel's signature as an agent does."""
    sig = signature or wheel.with_name(wheel.name + ".sig")
    try:
        key = load_public_key(public.read_bytes(), str(public))
        verify(key, wheel.name, sha256_hex(wheel.read_bytes()), sig.read_text())
    except (OSError, ReleaseSignatureError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{wheel.name}: signature good (release key {key_id(key)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="release-key", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("new", help="make a new release key pair")
    k.add_argument("--out", type=pathlib.Path, required=True, help="the folder to write it to")
    s = sub.add_parser("sign", help="sign a classbridge wheel (writes WHEEL.sig)")
    s.add_argument("wheel", type=pathlib.Path)
    s.add_argument("--key", type=pathlib.Path, required=True, help="the private key (PEM)")
    v = sub.add_parser("verify", help="check a wheel's signature with the public key")
    v.add_argument("wheel", type=pathlib.Path)
    v.add_argument("--public-key", type=pathlib.Path, required=True)
    v.add_argument("--signature", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.command == "new":
        return keygen(args.out)
    if args.command == "sign":
        return sign_wheel(args.wheel, args.key)
    return verify_wheel(args.wheel, args.public_key, args.signature)


if __name__ == "__main__":
    sys.exit(main())
