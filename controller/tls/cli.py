"""``classroom-controller serve``'s TLS options, and ``classroom-controller tls …``."""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import typer

from controller.common.cli_common import DEFAULT_STATE, JsonOut, StateDir, fail
from controller.tls.ca import controller_names
from controller.tls.errors import TlsSetupError
from controller.tls.probe import probe_tls, state_trust_pem
from controller.tls.server import server_certificate

TlsCert = Annotated[
    pathlib.Path | None,
    typer.Option(
        "--tls-cert",
        help="Server certificate (PEM, may carry its chain). Without it the controller "
        "makes a county CA and a certificate in STATE_DIR/tls on first start.",
    ),
]
TlsKey = Annotated[
    pathlib.Path | None, typer.Option("--tls-key", help="Private key of --tls-cert (PEM).")
]
TlsName = Annotated[
    list[str] | None,
    typer.Option(
        "--tls-name",
        help="Another DNS name or address agents and browsers use for this controller "
        "(repeatable; added to the generated certificate).",
    ),
]
TrustedProxy = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-proxy",
        help="Address or CIDR of a TLS-terminating proxy (repeatable). Plain HTTP is then "
        "accepted on --proxy-port, only from these and only with X-Forwarded-Proto: https.",
    ),
]
ProxyPort = Annotated[
    int, typer.Option("--proxy-port", help="Plain HTTP port for the trusted proxies.")
]

tls_app = typer.Typer(help="HTTPS: the county CA and checks.", no_args_is_help=True)


@tls_app.command("fingerprint")
def fingerprint(
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    bind: Annotated[str, typer.Option(help="The address serve binds.")] = "127.0.0.1",
    tls_name: TlsName = None,
    json_out: JsonOut = False,
) -> None:
    """Print the county CA's SHA-256 fingerprint (making the CA if there is none yet)."""
    try:
        cert = server_certificate(state_dir, bind, tls_name or [])
    except TlsSetupError as err:
        fail(str(err))
    if json_out:
        doc = {
            "sha256": cert.fingerprint,
            "ca": str(state_dir / "tls" / "ca.pem"),
            "names": controller_names(bind, tls_name or []),
        }
        typer.echo(json.dumps(doc))
    else:
        typer.echo(f"county CA SHA-256 {cert.fingerprint}")
        typer.echo(f"CA certificate: {state_dir / 'tls' / 'ca.pem'}")


@tls_app.command("check")
def check(
    url: Annotated[str, typer.Argument(help="The controller, e.g. https://10.0.0.2:7780")],
    state_dir: StateDir = pathlib.Path(DEFAULT_STATE),
    ca: Annotated[
        pathlib.Path | None, typer.Option(help="CA to trust (default: STATE_DIR/tls/ca.pem).")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Check that the controller requires TLS: HTTPS works, plain HTTP is refused (exit 1
    otherwise)."""
    try:
        trust = ca.read_text() if ca is not None else state_trust_pem(state_dir)
    except OSError as err:
        fail(f"cannot read the CA to trust: {err}")
    result = probe_tls(url, trust)
    if json_out:
        typer.echo(json.dumps({"tls": result.required, "detail": result.detail}))
    else:
        typer.echo(("PASS " if result.required else "FAIL ") + result.detail)
    if not result.required:
        raise typer.Exit(1)
