"""The controller's HTTPS trust anchor as both sides use it: how a pinned certificate is
fingerprinted, and the client context that trusts that certificate and nothing else.

The anchor reaches the agent inside ``EnrolResult`` (whose socket is authenticated by the
pinned CURVE key), so the agent never consults the system's CA store for its controller.
"""

from __future__ import annotations

import hashlib
import ssl

MAX_TRUST_PEM_CHARS = 16_384  # a P-256 or RSA-4096 certificate is well under this


def pem_fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate's DER bytes, as colon-separated upper-case hex."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.strip() + "\n")).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()


def pinned_client_context(trust_pem: str) -> ssl.SSLContext:
    """A TLS client context that trusts exactly ``trust_pem`` (the county CA, or the
    operator's own certificate) and checks the host name against it.

    Partial chains are allowed so that pinning an intermediate or a leaf certificate an
    operator supplied works too. Raises ``ssl.SSLError`` (a ``ValueError`` for empty text)
    when the PEM does not hold a certificate.
    """
    if "BEGIN CERTIFICATE" not in trust_pem:
        raise ValueError("no PEM certificate to pin")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=trust_pem)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
