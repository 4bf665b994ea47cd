"""Writing and reading the per-lesson manifest crash-safe (fsync, atomic rename)."""

from __future__ import annotations

import json
import os
import pathlib

from protocols.manifest import MANIFEST_NAME, Manifest

__all__ = ["MANIFEST_NAME", "Manifest", "read_manifest", "write_manifest"]


def write_manifest(directory: pathlib.Path, manifest: Manifest) -> pathlib.Path:
    """Write, fsync and atomically rename the manifest into ``directory``."""
    path = directory / MANIFEST_NAME
    tmp = directory / (MANIFEST_NAME + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(manifest.model_dump_json(indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_manifest(path: pathlib.Path) -> Manifest:
    """Read a manifest back."""
    return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
