"""Agent releases for the tests: a release key pair, and classbridge wheels built from this
checkout with any version (and, for a bad build, a few lines changed), signed with the
release machine's own script."""

from __future__ import annotations

import base64
import hashlib
import io
import pathlib
import zipfile

import release_key  # scripts/release_key.py (on pytest's pythonpath)

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("edge_agent", "protocols", "controller")
ENTRY_POINTS = (
    "[console_scripts]\n"
    "classroom-agent = edge_agent.cli:main\n"
    "classroom-controller = controller.app.cli:main\n"
)


def make_key(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A new release key pair: (private, public) PEM files."""
    assert release_key.main(["new", "--out", str(folder)]) == 0
    return folder / "release.key", folder / "release.pub"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    out_dir: pathlib.Path, version: str, patches: dict[str, tuple[str, str]] | None = None
) -> pathlib.Path:
    """``classbridge-<version>-py3-none-any.whl`` of this checkout's packages, the agent's
    ``__version__`` set to ``version``; ``patches`` maps a file to (old, new) text."""
    patches = dict(patches or {})
    patches.setdefault(
        "edge_agent/__init__.py", ('__version__ = "0.1.0"', f'__version__ = "{version}"')
    )
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = path.relative_to(REPO).as_posix()
            data = path.read_bytes()
            if name in patches:
                old, new = patches.pop(name)
                text = data.decode()
                assert old in text, f"{old!r} not in {name}"
                data = text.replace(old, new).encode()
            files[name] = data
    assert not patches, f"patched files not found: {sorted(patches)}"
    info = f"classbridge-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: classbridge\nVersion: {version}\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: classbridge-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = ENTRY_POINTS.encode()
    files[f"{info}/top_level.txt"] = "\n".join(PACKAGES).encode() + b"\n"
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files.items())
    record += f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"classbridge-{version}-py3-none-any.whl"
    wheel.write_bytes(buf.getvalue())
    return wheel


def sign_wheel(wheel: pathlib.Path, private: pathlib.Path) -> pathlib.Path:
    """Sign as the release machine does; returns WHEEL.sig."""
    assert release_key.main(["sign", str(wheel), "--key", str(private)]) == 0
    return wheel.with_name(wheel.name + ".sig")
