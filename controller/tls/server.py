"""The HTTPS listener's side: which certificate the controller serves, and its context."""

from __future__ import annotations

import pathlib
import ssl
from collections.abc import Iterable

from controller.tls.ca import (
    ServerCertificate,
    controller_names,
    ensure_server_certificate,
    given_certificate,
)
from controller.tls.errors import TlsSetupError


def server_certificate(
    state_dir: pathlib.Path,
    bind_host: str,
    names: Iterable[str] = (),
    cert: pathlib.Path | None = None,
    key: pathlib.Path | None = None,
) -> ServerCertificate:
    """The operator's certificate when given, else the county CA's for this controller."""
    if (cert is None) != (key is None):
        raise TlsSetupError("give --tls-cert and --tls-key together, or neither")
    if cert is not None and key is not None:
        return given_certificate(cert, key)
    return ensure_server_certificate(state_dir, controller_names(bind_host, names))


def server_context(certificate: ServerCertificate) -> ssl.SSLContext:
    """TLS 1.2 or later with the certificate loaded; raises ``TlsSetupError``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certificate.cert_path, certificate.key_path)
    except (OSError, ssl.SSLError) as err:
        raise TlsSetupError(
            f"cannot load {certificate.cert_path} with {certificate.key_path}: {err}"
        ) from err
    return ctx
