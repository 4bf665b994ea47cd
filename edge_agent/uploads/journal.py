"""The upload journal: a SQLite file that remembers every recording file to upload.

A row per file (segment or manifest): its checksum, the multipart upload it belongs to
and the parts storage has acknowledged, the attempts so far and when to try next. The
journal survives ``kill -9`` (SQLite's WAL), so an upload interrupted at 90 % resumes at
90 %, and a file is never forgotten until storage has confirmed its checksum.

A part's CRC32 is kept with its ETag (completing hands both to storage). Parts journalled
before CRC32s were kept have none: their upload was opened without part checksums, and
it completes without them.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time
from dataclasses import dataclass

from protocols.private_files import private_dir, private_file
from protocols.uploads import StoredPart

SCHEMA = """
CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY,
    lesson_id TEXT NOT NULL,
    rel TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',      -- pending | verified | evicted | lost
    session_id TEXT,
    part_size INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    verified_at REAL,
    UNIQUE (lesson_id, rel)
);
CREATE TABLE IF NOT EXISTS part (
    upload_id INTEGER NOT NULL REFERENCES upload(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    crc32 TEXT,
    PRIMARY KEY (upload_id, n)
);
"""
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class JournalItem:
    """One file to upload."""

    id: int
    lesson_id: str
    rel: str
    path: pathlib.Path
    size: int
    sha256: str
    state: str
    session_id: str | None
    part_size: int | None
    attempts: int
    next_try_at: float
    last_error: str
    created_at: float


class UploadJournal:
    """Thread-safe access to the journal (the recorder thread enqueues, the loop uploads)."""

    def __init__(self, path: pathlib.Path) -> None:
        private_dir(path.parent)
        private_file(path)  # SQLite gives its -wal and -shm files the database's mode
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(part)")}
        if "crc32" not in columns:  # a journal written before parts kept their CRC32
            self._db.execute("ALTER TABLE part ADD COLUMN crc32 TEXT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[JournalItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, lesson_id, rel, path, size, sha256, state, session_id, part_size,"
                " attempts, next_try_at, last_error, created_at FROM upload " + sql,
                args,
            ).fetchall()
        return [JournalItem(r[0], r[1], r[2], pathlib.Path(r[3]), *r[4:]) for r in rows]

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def enqueue(self, lesson_id: str, rel: str, path: pathlib.Path, size: int, sha256: str) -> bool:
        """Add a file; a changed file (new checksum) starts over. True if anything changed."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, sha256 FROM upload WHERE lesson_id=? AND rel=?", (lesson_id, rel)
            ).fetchone()
            if row is not None and row[1] == sha256:
                return False
            if row is not None:
                self._db.execute("DELETE FROM upload WHERE id=?", (row[0],))
            self._db.execute(
                "INSERT INTO upload (lesson_id, rel, path, size, sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (lesson_id, rel, str(path), size, sha256, time.time()),
            )
        return True

    def due(self, now: float, limit: int = 8) -> list[JournalItem]:
        """Pending files whose time has come; a manifest only after its lesson's segments."""
        return self._rows(
            "WHERE state='pending' AND next_try_at<=? AND (rel!=? OR NOT EXISTS ("
            " SELECT 1 FROM upload o WHERE o.lesson_id=upload.lesson_id AND o.rel!=?"
            " AND o.state='pending')) ORDER BY rel=?, created_at, id LIMIT ?",
            (now, MANIFEST, MANIFEST, MANIFEST, limit),
        )

    def next_due_at(self) -> float | None:
        """When the earliest pending file may be tried."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_try_at) FROM upload WHERE state='pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def get(self, item_id: int) -> JournalItem:
        """One row by id."""
        return self._rows("WHERE id=?", (item_id,))[0]

    def set_session(self, item_id: int, session_id: str, part_size: int) -> None:
        """The multipart upload storage opened for this file."""
        self._exec(
            "UPDATE upload SET session_id=?, part_size=? WHERE id=?",
            (session_id, part_size, item_id),
        )

    def clear_session(self, item_id: int) -> None:
        """Forget the upload and its parts (storage lost it, or the checksum failed)."""
        with self._lock:
            self._db.execute("DELETE FROM part WHERE upload_id=?", (item_id,))
            self._db.execute(
                "UPDATE upload SET session_id=NULL, part_size=NULL WHERE id=?", (item_id,)
            )

    def part_done(
        self, item_id: int, n: int, etag: str, size: int, crc32: str | None = None
    ) -> None:
        """Storage acknowledged part ``n`` (sent with CRC32 ``crc32``)."""
        self._exec(
            "INSERT OR REPLACE INTO part (upload_id, n, etag, size, crc32) VALUES (?, ?, ?, ?, ?)",
            (item_id, n, etag, size, crc32),
        )

    def parts(self, item_id: int) -> dict[int, StoredPart]:
        """Acknowledged parts by number, with their ETag and CRC32 (None if not kept)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT n, etag, crc32 FROM part WHERE upload_id=?", (item_id,)
            ).fetchall()
        return {int(n): StoredPart(int(n), str(e), c) for n, e, c in rows}

    def verified(self, item_id: int) -> None:
        """Storage confirmed the checksum: the local file may now be evicted."""
        with self._lock:
            self._db.execute(
                "UPDATE upload SET state='verified', verified_at=?, last_error='' WHERE id=?",
                (time.time(), item_id),
            )
            self._db.execute("DELETE FROM part WHERE upload_id=?", (item_id,))

    def failed(self, item_id: int, error: str, retry_at: float) -> None:
        """An attempt failed; try again at ``retry_at``."""
        self._exec(
            "UPDATE upload SET attempts=attempts+1, last_error=?, next_try_at=? WHERE id=?",
            (error[:500], retry_at, item_id),
        )

    def lost(self, item_id: int, error: str) -> None:
        """The local file is gone before upload: nothing more can be done; kept for audit."""
        self._exec(
            "UPDATE upload SET state='lost', last_error=? WHERE id=?", (error[:500], item_id)
        )

    def retry_all_now(self) -> None:
        """Make every pending file due (the controller came back)."""
        self._exec("UPDATE upload SET next_try_at=0 WHERE state='pending'")

    def evictable(self) -> list[JournalItem]:
        """Verified files still on disk, oldest first (manifests last: they are tiny)."""
        return self._rows("WHERE state='verified' ORDER BY rel=?, created_at, id", (MANIFEST,))

    def evicted(self, item_id: int) -> None:
        """The verified local file was deleted to make room."""
        self._exec("UPDATE upload SET state='evicted' WHERE id=?", (item_id,))

    def is_verified(self, path: pathlib.Path) -> bool:
        """Has storage confirmed this file?"""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM upload WHERE path=? AND state IN ('verified','evicted')",
                (str(path),),
            ).fetchone()
        return row is not None

    def summary(self) -> dict[str, object]:
        """Counts and bytes per state, and the oldest pending file's age."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*), COALESCE(SUM(size),0), MIN(created_at)"
                " FROM upload GROUP BY state"
            ).fetchall()
            err = self._db.execute(
                "SELECT last_error FROM upload WHERE state='pending' AND last_error!=''"
                " ORDER BY next_try_at DESC LIMIT 1"
            ).fetchone()
        out: dict[str, object] = {s: {"files": n, "bytes": b} for s, n, b, _ in rows}
        pending = next((r for r in rows if r[0] == "pending"), None)
        out["oldest_pending_s"] = round(time.time() - pending[3], 1) if pending else 0.0
        out["last_error"] = err[0] if err else ""
        return out

    def pending(self) -> list[JournalItem]:
        """Every file not yet confirmed by storage."""
        return self._rows("WHERE state='pending' ORDER BY created_at, id")
