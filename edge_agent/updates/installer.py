"""Installing an offered release beside the running one: check the wheel against its
signature, make a fresh virtual environment for it, install the wheel there, and try it.

The new environment takes the classbridge wheel only (``--no-deps``, no index: a
classroom PC may not reach one); third-party libraries come from the dependency folder
install-agent filled (``classbridge-deps.pth`` in the environment names it), so a release
that needs a new library needs install-agent run again. Blocking: run off the event loop.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.errors import AgentError
from edge_agent.updates.boot_guard import current_venv, venv_dir
from protocols.releases import (
    ReleaseSignatureError,
    UpdateOffer,
    sha256_hex,
    verify,
    wheel_version,
)

DEPS_PTH = "classbridge-deps.pth"
PIP_TIMEOUT_S = 600.0
TRY_TIMEOUT_S = 120.0


class UpdateError(AgentError):
    """An offered release could not be installed (nothing was switched)."""


def check_wheel(offer: UpdateOffer, wheel: bytes, public_key: Ed25519PublicKey) -> None:
    """Raise UpdateError unless the downloaded bytes are the release the key signed."""
    if wheel_version(offer.filename) != offer.version:
        raise UpdateError(f"{offer.filename} does not carry version {offer.version}")
    got = sha256_hex(wheel)
    if got != offer.sha256 or len(wheel) != offer.size:
        raise UpdateError(
            f"downloaded {offer.filename}: {len(wheel)} bytes, sha256 {got[:12]}…; the offer "
            f"said {offer.size} bytes, {offer.sha256[:12]}…"
        )
    try:
        verify(public_key, offer.filename, got, offer.signature)
    except ReleaseSignatureError as err:
        raise UpdateError(f"refused {offer.filename}: {err}") from err


def _site_packages(venv: pathlib.Path) -> pathlib.Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise UpdateError(f"{venv} has no lib/python3*/site-packages")
    return found[0]


def deps_site(releases: pathlib.Path) -> pathlib.Path:
    """Where third-party libraries come from: what the current release uses, else this
    interpreter's own site-packages."""
    current = current_venv(releases)
    if current is not None:
        for pth in current.glob(f"lib/python3*/site-packages/{DEPS_PTH}"):
            line = pth.read_text().strip().splitlines()
            if line:
                return pathlib.Path(line[0])
    return pathlib.Path(sysconfig.get_paths()["purelib"])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(cmd: list[str], what: str, timeout: float, cwd: pathlib.Path) -> str:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_clean_env()
        )
    except subprocess.TimeoutExpired:
        raise UpdateError(f"{what} took over {timeout:.0f} s") from None
    except OSError as err:
        raise UpdateError(f"{what}: {err}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise UpdateError(f"{what} failed (exit {done.returncode}): {' / '.join(tail)}")
    return done.stdout


def install(
    releases: pathlib.Path,
    offer: UpdateOffer,
    wheel: bytes,
    public_key: Ed25519PublicKey,
    deps: pathlib.Path | None = None,
) -> pathlib.Path:
    """Check ``wheel``, install it into a new environment beside the current one and try
    importing it; returns the new environment. Nothing is switched."""
    check_wheel(offer, wheel, public_key)
    venv = venv_dir(releases, offer.version)
    current = current_venv(releases)
    if current is not None and current == venv.resolve():
        raise UpdateError(f"{offer.version} is the release running now")
    deps = deps or deps_site(releases)
    home = venv.parent
    if home.exists():
        shutil.rmtree(home)  # a half-made environment from an earlier try
    home.mkdir(parents=True)
    wheel_path = home / offer.filename
    wheel_path.write_bytes(wheel)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "making the venv", 120, home)
    (_site_packages(venv) / DEPS_PTH).write_text(f"{deps}\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",  # the agent's home is not writable under its unit
            "--disable-pip-version-check",
            "-q",
            str(wheel_path),
        ],
        f"installing {offer.filename}",
        PIP_TIMEOUT_S,
        home,
    )
    if not (venv / "bin" / "classroom-agent").exists():
        raise UpdateError(f"{offer.filename} installed no classroom-agent command")
    code = "import edge_agent, edge_agent.cli; print(edge_agent.__version__)"
    said = _run(
        [str(venv / "bin" / "python"), "-c", code], "trying the new release", TRY_TIMEOUT_S, home
    ).strip()
    if said != offer.version:
        raise UpdateError(f"the wheel of {offer.version} holds agent version {said!r}")
    return venv
