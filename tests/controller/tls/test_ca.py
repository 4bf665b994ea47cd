"""The county CA and server certificate: made once, reused, keys 0600 from creation."""

from __future__ import annotations

import os
import pathlib
import stat

from cryptography import x509
from typer.testing import CliRunner

from controller.app.cli import app
from controller.tls.ca import (
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    TLS_DIR,
    controller_names,
    ensure_server_certificate,
    write_private,
)


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_made_once_then_reused_byte_for_byte(tmp_path: pathlib.Path) -> None:
    first = ensure_server_certificate(tmp_path, ["127.0.0.1", "localhost"])
    folder = tmp_path / TLS_DIR
    before = {n: (folder / n).read_bytes() for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)}
    second = ensure_server_certificate(tmp_path, ["127.0.0.1", "localhost"])
    assert first.issued and not second.issued
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert second.fingerprint == first.fingerprint and len(first.fingerprint) == 95


def test_a_new_name_reissues_the_server_certificate_from_the_same_ca(
    tmp_path: pathlib.Path,
) -> None:
    first = ensure_server_certificate(tmp_path, ["127.0.0.1"])
    ca_key = (tmp_path / TLS_DIR / CA_KEY).read_bytes()
    again = ensure_server_certificate(tmp_path, ["127.0.0.1", "cb.county.example"])
    assert again.issued and again.trust_pem == first.trust_pem  # agents' pins still hold
    assert (tmp_path / TLS_DIR / CA_KEY).read_bytes() == ca_key
    cert = x509.load_pem_x509_certificate(again.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "cb.county.example" in san.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(again.trust_pem.encode())
    cert.verify_directly_issued_by(ca)


def test_private_keys_are_0600_even_under_a_permissive_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)
    try:
        ensure_server_certificate(tmp_path, ["127.0.0.1"])
        write_private(tmp_path / "probe.key", b"secret")
    finally:
        os.umask(old)
    folder = tmp_path / TLS_DIR
    assert _mode(folder / CA_KEY) == 0o600
    assert _mode(folder / SERVER_KEY) == 0o600
    assert _mode(tmp_path / "probe.key") == 0o600
    assert _mode(folder) == 0o700


def test_names_cover_bind_host_name_and_loopback_but_never_a_wildcard() -> None:
    names = controller_names("0.0.0.0", ["cb.county.example", " "])
    assert "0.0.0.0" not in names
    assert {"localhost", "127.0.0.1", "cb.county.example"} <= set(names)
    assert controller_names("10.0.0.2")[0] == "10.0.0.2"


def test_cli_prints_the_ca_fingerprint(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    made = ensure_server_certificate(state, controller_names("127.0.0.1"))
    out = CliRunner().invoke(app, ["tls", "fingerprint", "--state-dir", str(state)])
    assert out.exit_code == 0, out.output
    assert f"county CA SHA-256 {made.fingerprint}" in out.output
