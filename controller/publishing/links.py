"""The secrets of a published lesson: its stream key and its viewers' signed links.

Both derive from the origin's one secret, so nothing per lesson is stored:

- the **stream key** the lead classroom publishes with is an HMAC of the lesson id; the
  origin's ``on_publish`` check (:mod:`controller.publishing.gate`) recomputes it;
- a **public watch link** is nginx's ``secure_link`` form, with the hash and expiry in
  the path (``/s/<md5>/<expires>/<lesson>/``), so the page's relative ``index.m3u8`` and
  segment URLs carry the same proof and need no query string;
- an **intranet link** (``/lan/<lesson>/``) carries no secret: nginx lets in only the
  configured networks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

#: A lesson id as it may appear in a stream name and an nginx path.
LESSON_ID = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
#: The origin's secret: hex, so it can be written into nginx.conf as it is.
SECRET = re.compile(r"^[0-9a-f]{32,128}$")


def check_lesson_id(lesson_id: str) -> str:
    """``lesson_id`` if it can name a stream and a path, else ValueError saying why."""
    if not LESSON_ID.match(lesson_id) or lesson_id.startswith("."):
        raise ValueError(
            f"lesson id {lesson_id!r} cannot be published: a stream name takes 1 to 80 "
            "letters, digits, '.', '_' or '-', not starting with '.'"
        )
    return lesson_id


def stream_key(secret: str, lesson_id: str) -> str:
    """The key the lead classroom publishes ``lesson_id`` with (HMAC-SHA256, hex)."""
    check_lesson_id(lesson_id)
    mac = hmac.new(secret.encode(), f"publish:{lesson_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def key_matches(secret: str, lesson_id: str, key: str) -> bool:
    """Whether ``key`` is ``lesson_id``'s stream key (constant-time)."""
    try:
        expected = stream_key(secret, lesson_id)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode(), key.encode())


def signature(secret: str, lesson_id: str, expires: int) -> str:
    """nginx ``secure_link_md5 "$expires$lesson <secret>"``: base64url MD5, no padding."""
    # MD5 because it is what nginx secure_link_md5 checks.
    digest = hashlib.md5(f"{expires}{lesson_id} {secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def public_path(secret: str, lesson_id: str, expires: int) -> str:
    """The watch page's path under a signed link that ends at ``expires`` (Unix seconds)."""
    check_lesson_id(lesson_id)
    return f"/s/{signature(secret, lesson_id, expires)}/{expires}/{lesson_id}/"


def intranet_path(lesson_id: str) -> str:
    """The watch page's path for viewers on the intranet (no secret)."""
    return f"/lan/{check_lesson_id(lesson_id)}/"
