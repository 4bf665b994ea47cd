"""The county CA (县级 CA) and the controller's server certificate, made on first start.

Both live in ``STATE_DIR/tls``: ``ca.pem``/``ca.key`` and ``server.pem``/``server.key``.
Private keys are created with mode 0600 (``os.open``), never widened and narrowed later.
The CA is kept for as long as the state directory lives, because every enrolled agent
pins it; the server certificate is issued again from it when a name is added or it nears
expiry, which the agents accept without re-enrolling.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import pathlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.tls.errors import TlsSetupError
from protocols.tls import pem_fingerprint

TLS_DIR = "tls"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class ServerCertificate:
    """What the HTTPS listener loads and what agents and browsers are told to trust."""

    cert_path: pathlib.Path
    key_path: pathlib.Path
    trust_pem: str  # the certificate agents pin: the county CA, or the operator's anchor
    issued: bool = False  # this start made a new server certificate

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the pinned certificate (what ``serve`` prints for technicians)."""
        return pem_fingerprint(self.trust_pem)

    def spki_sha256_b64(self) -> str:
        """Base64 SHA-256 of the server key's SubjectPublicKeyInfo, the form Chromium's
        ``--ignore-certificate-errors-spki-list`` takes."""
        return spki_sha256_b64(self.cert_path.read_bytes())


def spki_sha256_b64(cert_pem: bytes) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def controller_names(bind_host: str, extra: Iterable[str] = ()) -> list[str]:
    """The names the server certificate covers: the bind address (unless a wildcard), this
    machine's host name, localhost, 127.0.0.1 and every ``--tls-name``."""
    names = [n for n in (bind_host, socket.gethostname(), "localhost", "127.0.0.1") if n]
    names += [n.strip() for n in extra if n.strip()]
    return list(dict.fromkeys(n for n in names if n not in WILDCARD_HOSTS))


def ensure_server_certificate(
    state_dir: pathlib.Path, names: Iterable[str], now: dt.datetime | None = None
) -> ServerCertificate:
    """The county CA and a server certificate for ``names`` in ``state_dir/tls``: reused
    when present and still good, otherwise made (first start, a new name, near expiry)."""
    now = now or dt.datetime.now(dt.UTC)
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise TlsSetupError("the server certificate needs at least one name")
    folder = state_dir / TLS_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_cert, ca_key = _load_or_make_ca(folder, now)
    cert_path, key_path = folder / SERVER_CERT, folder / SERVER_KEY
    issued = False
    if not _server_still_good(cert_path, key_path, ca_cert, wanted, now):
        _issue_server(folder, ca_cert, ca_key, wanted, now)
        issued = True
    trust = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    return ServerCertificate(cert_path, key_path, trust, issued)


def given_certificate(cert_path: pathlib.Path, key_path: pathlib.Path) -> ServerCertificate:
    """An operator's ``--tls-cert``/``--tls-key``: agents pin the chain's last certificate
    (its root or issuing CA when the file carries the chain, else the certificate itself)."""
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except (OSError, ValueError) as err:
        raise TlsSetupError(f"--tls-cert {cert_path}: not a PEM certificate ({err})") from err
    if not key_path.is_file():
        raise TlsSetupError(f"--tls-key {key_path}: no such file")
    anchor = chain[-1].public_bytes(serialization.Encoding.PEM).decode()
    return ServerCertificate(cert_path, key_path, anchor)


def write_private(path: pathlib.Path, data: bytes) -> None:
    """Write a secret atomically; the file is 0600 from the moment it exists."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.rename(path)


def _write_public(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_or_make_ca(
    folder: pathlib.Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        except ValueError as err:
            raise TlsSetupError(
                f"{folder}: the county CA is damaged ({err}); restore it from a backup "
                "(enrolled agents pin it), or move the folder away and re-enrol every agent"
            ) from err
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TlsSetupError(f"{key_path}: expected an EC key")
        return cert, key
    if cert_path.exists() or key_path.exists():
        raise TlsSetupError(
            f"{folder}: only one of {CA_CERT} and {CA_KEY} is there; restore the other"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "classbridge"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"classbridge county CA {socket.gethostname()}"
            ),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a crash in between leaves a key without a certificate, which is refused
    # above rather than silently replaced.
    write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _covered(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def _server_still_good(
    cert_path: pathlib.Path,
    key_path: pathlib.Path,
    ca: x509.Certificate,
    names: list[str],
    now: dt.datetime,
) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return False  # a crash between writing the key and its certificate
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return wanted <= _covered(cert) and cert.not_valid_after_utc - RENEW_BEFORE > now


def _spki(public: object) -> bytes:
    assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _issue_server(
    folder: pathlib.Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    now: dt.datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(folder / SERVER_KEY, _key_pem(key))
    _write_public(folder / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))
