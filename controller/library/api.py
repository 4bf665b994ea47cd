"""Resource library routes (资源库); who may call which is in ``controller.auth.roles``
and explained in ``controller.library``.

- ``GET  /api/v1/library/items?status=approved``: a page of items (``status`` one of
  approved — the default —, pending, rejected, unpublished, or all);
- ``POST /api/v1/library/items``: ``{"lesson", "classroom", "track", "title", "subject",
  "grade", "chapter", "teacher", "school"}`` asks to publish a recording (pending);
- ``POST /api/v1/library/clips``: the same with ``"start_s"`` and ``"end_s"`` cuts a clip
  of at most 300 s (a remux at key frames) and asks to publish it;
- ``GET  /api/v1/library/items/{item}``: one item;
- ``POST /api/v1/library/items/{item}/review``: ``{"decision": "approve"|"reject",
  "reason"}``;
- ``POST /api/v1/library/items/{item}/unpublish``: ``{"reason"}``;
- ``GET  /api/v1/library/items/{item}/media``: the MP4 (byte ranges), audited;
- ``GET  /api/v1/library/items/{item}/package``: an approved item's zip, audited.

Bodies are capped at 16 KiB; every change is audited by the auth middleware.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth.middleware import principal_of, scope_of
from controller.auth.roles import ADMIN, INSPECTOR, SCHEDULER
from controller.auth.viewing import VIEW_DETAIL
from controller.common.api_common import error, read_capped, run_db
from controller.common.body_fields import InvalidRequestField, number_field
from controller.common.errors import InvalidRequest, NotFound, WrongState
from controller.db.session import utcnow
from controller.library import store
from controller.library.clip import ClipError, check_span, cut_sandboxed
from controller.library.metadata import FIELDS, ItemMetadata
from controller.library.package import package_name, write_package
from controller.storage.backend import StorageBackend, StorageError, object_key

ITEMS = "/api/v1/library/items"
ITEM = "/api/v1/library/items/{item}"
CLIPS = "/api/v1/library/clips"
MAX_BODY_BYTES = 16 * 1024
# Roles that see the review queue (pending, rejected, unpublished items); the rest of the
# staff see approved items only.
QUEUE_ROLES = frozenset({ADMIN, SCHEDULER, INSPECTOR})
SOURCE_FIELDS = ("lesson", "classroom", "track")
CHUNK = 256 * 1024


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    raw = await read_capped(request, MAX_BODY_BYTES)
    if raw is None:
        return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as err:
        return error(400, f"body is not JSON ({err})")
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; send {', '.join(sorted(allowed))}"
        )


def _source(body: dict[str, Any]) -> tuple[str, str, str]:
    out = []
    for name in SOURCE_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > 64:
            raise InvalidRequestField(name, value, "an id (1 to 64 characters)")
        out.append(value)
    return out[0], out[1], out[2]


def _statuses(value: str | None) -> tuple[str, ...]:
    if not value or value == store.APPROVED:
        return (store.APPROVED,)
    if value == "all":
        return store.STATUSES
    if value not in store.STATUSES:
        raise InvalidRequest(
            f"query status={value!r}; choose one of {', '.join(store.STATUSES)} or all"
        )
    return (value,)


def _int(name: str, value: str | None, default: int, hi: int) -> int:
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"query {name}={value!r} is not a whole number") from None
    if not 0 <= n <= hi:
        raise InvalidRequest(f"query {name}={n} is out of range [0, {hi}]")
    return n


class LibraryApi:
    """The routes; database work and file work run in worker threads."""

    def __init__(self, sessions: sessionmaker[Session], storage: StorageBackend) -> None:
        self._sessions = sessions
        self._storage = storage

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes."""
        return [
            web.get(ITEMS, self.list),
            web.post(ITEMS, self.publish),
            web.post(CLIPS, self.clip),
            web.get(ITEM, self.show),
            web.post(ITEM + "/review", self.review),
            web.post(ITEM + "/unpublish", self.unpublish),
            web.get(ITEM + "/media", self.media),
            web.get(ITEM + "/package", self.package),
        ]

    async def _run(self, work: Callable[[Session], web.StreamResponse]) -> web.StreamResponse:
        def guarded(db: Session) -> web.StreamResponse:
            # WrongState is an InvalidRequest, which run_db answers 400: a state is 409.
            try:
                return work(db)
            except WrongState as err:
                return error(409, str(err))
            except store.SelfReview as err:
                return error(403, str(err))

        return await run_db(self._sessions, guarded)

    def _seen(self, db: Session, request: web.Request, item_id: str) -> Any:
        """The item, if the caller's scope and role see it (else NotFound)."""
        item = store.get_item(db, scope_of(request), item_id)
        if item.status != store.APPROVED and principal_of(request).role not in QUEUE_ROLES:
            raise NotFound(f"no library item {item_id}; GET {ITEMS} lists them")
        return item

    async def list(self, request: web.Request) -> web.StreamResponse:
        """A page of items, newest request first."""
        q, role, scope = request.query, principal_of(request).role, scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            statuses = _statuses(q.get("status"))
            if statuses != (store.APPROVED,) and role not in QUEUE_ROLES:
                raise InvalidRequest(
                    f"a {role} sees approved items only; leave out status or send status=approved"
                )
            limit = _int("limit", q.get("limit"), 50, store.MAX_LIMIT) or 50
            offset = _int("offset", q.get("offset"), 0, 10**9)
            return web.json_response(store.list_items(db, scope, statuses, limit, offset))

        return await self._run(work)

    async def show(self, request: web.Request) -> web.StreamResponse:
        """One item."""
        item_id = request.match_info["item"]
        return await self._run(
            lambda db: web.json_response(store.item_document(self._seen(db, request, item_id)))
        )

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """Ask to publish a whole recording with its metadata: a pending item."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        actor, scope = principal_of(request).username, scope_of(request)

        def work(db: Session) -> web.StreamResponse:
            _only(body, set(SOURCE_FIELDS) | set(FIELDS))
            rec = store.visible_recording(db, scope, *_source(body))
            meta = ItemMetadata.parse(body, store.lesson_defaults(db, rec))
            item, new = store.request_publish(db, rec, meta, actor)
            return web.json_response(store.item_document(item), status=201 if new else 200)

        return await self._run(work)

    async def clip(self, request: web.Request) -> web.StreamResponse:
        """Cut a clip of at most 300 s from a recording and ask to publish it."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        actor, scope = principal_of(request).username, scope_of(request)

        def plan(db: Session) -> tuple[Any, ItemMetadata, float, float]:
            _only(body, set(SOURCE_FIELDS) | set(FIELDS) | {"start_s", "end_s"})
            for name in ("start_s", "end_s"):
                if body.get(name) is None:
                    raise InvalidRequestField(name, None, "seconds from the recording's start")
            start_s = number_field(body, "start_s", 0.0)
            end_s = number_field(body, "end_s", 0.0)
            rec = store.visible_recording(db, scope, *_source(body))
            check_span(start_s, end_s, rec.duration_s)
            meta = ItemMetadata.parse(body, store.lesson_defaults(db, rec))
            db.expunge(rec)
            return rec, meta, start_s, end_s

        def job() -> tuple[Any, ItemMetadata, float, float]:
            with self._sessions() as db:
                return plan(db)

        try:
            rec, meta, start_s, end_s = await asyncio.to_thread(job)
        except NotFound as err:
            return error(404, str(err))
        except InvalidRequest as err:
            return error(400, str(err))
        key = object_key(
            "lessons",
            rec.lesson_id,
            rec.classroom_id,
            "clips",
            f"{rec.track}-{secrets.token_hex(6)}.mp4",
        )
        try:
            stored, result = await asyncio.to_thread(self._cut, rec.path, key, start_s, end_s)
        except ClipError as err:
            return error(422, f"could not cut the clip: {err}")
        except StorageError as err:
            return error(503, f"storage failed: {err}; retry later")

        def save(db: Session) -> web.StreamResponse:
            item = store.add_clip(
                db,
                rec,
                meta,
                actor,
                path=stored.key,
                start_s=result.start_s,
                end_s=result.end_s,
                duration_s=result.duration_s,
                codec=result.codec,
                sha256=stored.sha256,
                size=stored.size,
            )
            return web.json_response(store.item_document(item), status=201)

        return await self._run(save)

    def _cut(self, source_key: str, key: str, start_s: float, end_s: float) -> tuple[Any, Any]:
        """Fetch the source, cut it in the sandbox, store the clip (in a worker thread)."""
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="cb-clip-"))
        try:
            source = self._storage.fetch(source_key, tmp / "source.mp4")
            result = cut_sandboxed(source, tmp / "clip.mp4", start_s, end_s)
            return self._storage.store_file(result.path, key), result
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def review(self, request: web.Request) -> web.StreamResponse:
        """Approve or reject a pending item (not one the caller asked for)."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        actor, item_id = principal_of(request).username, request.match_info["item"]

        def work(db: Session) -> web.StreamResponse:
            _only(body, {"decision", "reason"})
            decision = body.get("decision")
            if decision not in ("approve", "reject"):
                raise InvalidRequestField("decision", decision, '"approve" or "reject"')
            reason = store.reason_text(body.get("reason"), required=decision == "reject")
            item = self._seen(db, request, item_id)
            item = store.review(db, item, decision == "approve", reason, actor)
            return web.json_response(store.item_document(item))

        return await self._run(work)

    async def unpublish(self, request: web.Request) -> web.StreamResponse:
        """Take an item out of the library (its media then follows retention)."""
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        actor, item_id = principal_of(request).username, request.match_info["item"]

        def work(db: Session) -> web.StreamResponse:
            _only(body, {"reason"})
            reason = store.reason_text(body.get("reason"), required=True)
            item = store.unpublish(db, self._seen(db, request, item_id), reason, actor)
            return web.json_response(store.item_document(item))

        return await self._run(work)

    def _media_of(self, request: web.Request, approved_only: bool) -> tuple[Any, str, float]:
        with self._sessions() as db:
            item = self._seen(db, request, request.match_info["item"])
            if approved_only and item.status != store.APPROVED:
                raise WrongState(
                    f"library item {item.id} is {item.status}; only an approved item is exported"
                )
            found = store.media_key(db, item)
            if found is None:
                raise NotFound(f"library item {item.id}: its file is no longer stored")
            db.expunge(item)
            return item, found[0], found[1]

    async def media(self, request: web.Request) -> web.StreamResponse:
        """The item's MP4, with byte ranges (or a redirect to storage's signed URL)."""
        try:
            _item, key, duration = await asyncio.to_thread(self._media_of, request, False)
        except NotFound as err:
            return error(404, str(err))
        local = self._storage.local_path(key)
        if local is not None:
            if not local.exists():
                return error(404, f"{key}: no longer stored")
            request[VIEW_DETAIL] = {"media": key, "duration_s": round(duration, 1)}
            return web.FileResponse(local, headers={"Content-Type": "video/mp4"})
        url = await asyncio.to_thread(self._storage.read_url, key)
        if url is None:
            return error(404, f"{key}: no longer stored")
        request[VIEW_DETAIL] = {"redirect": True, "duration_s": round(duration, 1)}
        return web.Response(status=302, headers={"Location": url})

    async def package(self, request: web.Request) -> web.StreamResponse:
        """An approved item as a zip: its MP4 and metadata.json."""
        try:
            item, key, _duration = await asyncio.to_thread(self._media_of, request, True)
        except NotFound as err:
            return error(404, str(err))
        except WrongState as err:
            return error(409, str(err))
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="cb-package-"))
        try:

            def build() -> tuple[pathlib.Path, dict[str, Any]]:
                media = self._storage.fetch(key, tmp / "media.mp4")
                out = tmp / package_name(item)
                with self._sessions() as db:
                    meta = write_package(db, item, media, out, utcnow())
                return out, meta

            try:
                zipped, meta = await asyncio.to_thread(build)
            except (StorageError, OSError) as err:
                return error(503, f"could not read the item's file: {err}; retry later")
            size = zipped.stat().st_size
            response = web.StreamResponse(
                headers={
                    "Content-Type": "application/zip",
                    "Content-Disposition": f'attachment; filename="{package_name(item)}"',
                }
            )
            response.content_length = size
            request[VIEW_DETAIL] = {
                "package": package_name(item),
                "bytes": size,
                "duration_s": meta["media"]["duration_s"],
            }
            await response.prepare(request)
            with open(zipped, "rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
