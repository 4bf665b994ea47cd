"""The archived reports in the controller's storage (local directory or S3), under
``reports/<term>/<period>/``: the HTML, a CSV per view, and ``manifest.json`` written last,
so a report is listed as complete only once every file of it is stored. Nothing else
records them: the listing is storage's own."""

from __future__ import annotations

import json
import pathlib
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from controller.report_archive.build import FILE_NAMES, ReportContent
from controller.storage.backend import SAFE_PART, StorageBackend, StorageError, object_key

PREFIX = "reports"
ARCHIVE_ROUTE = "/api/v1/reports/archive"
MANIFEST = "manifest.json"
_HEX = "x-"  # a term id storage cannot hold as a name is kept as its UTF-8 in hex


def term_folder(term_id: str) -> str:
    """The storage name of a term's folder (its id, or ``x-`` and the id's hex)."""
    if SAFE_PART.match(term_id) and not term_id.startswith(_HEX) and term_id not in (".", ".."):
        return term_id
    name = _HEX + term_id.encode().hex()
    if not SAFE_PART.match(name):
        raise ValueError(f"term id {term_id!r} is too long to name a report folder")
    return name


def term_of_folder(name: str) -> str:
    """The term id a folder holds (``term_folder`` reversed)."""
    if name.startswith(_HEX):
        try:
            return bytes.fromhex(name[len(_HEX) :]).decode()
        except ValueError:
            return name
    return name


def report_key(term_id: str, period: str, name: str) -> str:
    """The storage key of one file of one report."""
    return object_key(PREFIX, term_folder(term_id), period, name)


@dataclass
class Archived:
    """One report in storage: its files, and whether its manifest (written last) is there."""

    term: str
    period: str
    files: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every file stored (the manifest is written after them)."""
        return MANIFEST in self.files

    def document(self) -> dict[str, Any]:
        """The listing entry."""
        return {
            "term": self.term,
            "period": self.period,
            "kind": "term" if self.period == "term" else "month",
            "complete": self.complete,
            "files": [
                {"name": n, "url": f"{ARCHIVE_ROUTE}/{quote(self.term, safe='')}/{self.period}/{n}"}
                for n in self.files
                if n != MANIFEST
            ],
        }


def list_archive(storage: StorageBackend) -> list[Archived]:
    """Every report storage holds, by term then period."""
    found: dict[tuple[str, str], Archived] = {}
    for key in storage.keys(PREFIX):
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != PREFIX:
            continue
        term = term_of_folder(parts[1])
        entry = found.setdefault((term, parts[2]), Archived(term, parts[2]))
        entry.files.append(parts[3])
    return [found[k] for k in sorted(found)]


def write_report(storage: StorageBackend, content: ReportContent) -> Archived:
    """Store every file of ``content``, then its manifest; an earlier run's are replaced."""
    p = content.period
    files = content.files()
    assert set(files) == set(FILE_NAMES)
    stored: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="classbridge-report-") as tmp:
        for name, data in [*files.items(), (MANIFEST, b"")]:
            if name == MANIFEST:
                data = json.dumps(
                    {
                        "term": p.term,
                        "period": p.period,
                        "first": p.first.isoformat(),
                        "last": p.last.isoformat(),
                        "generated_at": content.generated_at.isoformat(),
                        "lessons": content.lessons,
                        "files": stored,
                    },
                    ensure_ascii=False,
                    indent=1,
                ).encode()
            src = pathlib.Path(tmp) / name
            src.write_bytes(data)
            obj = storage.store_file(src, report_key(p.term, p.period, name))
            stored[name] = {"bytes": obj.size, "sha256": obj.sha256}
    return Archived(p.term, p.period, sorted(stored))


def generated_at(storage: StorageBackend, term_id: str, period: str) -> datetime | None:
    """When a stored report was written (its manifest's word); None if that cannot be read."""
    with tempfile.TemporaryDirectory(prefix="classbridge-report-") as tmp:
        try:
            path = storage.fetch(report_key(term_id, period, MANIFEST), pathlib.Path(tmp) / "m")
            return datetime.fromisoformat(json.loads(path.read_bytes())["generated_at"])
        except (StorageError, OSError, ValueError, KeyError, TypeError):
            return None
