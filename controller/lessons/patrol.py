"""Patrol (网络巡课): the live lessons with their feeds and QoS, and console viewers that
watch them over WebRTC, through the lesson's relay or, for a lesson on Janus, through Janus.

``GET /api/v1/live`` lists the lessons this controller carries (built by
``controller.lessons.live_list``), each with its ``backend`` (``builtin``: its relay;
``janus``: a VideoRoom, ``controller.lessons.patrol_janus``).
On the relay, ``POST /api/v1/lessons/{lesson}/watch`` answers a browser's receive-only
offer. On Janus, the same POST (feeds only) makes the controller, which holds the room's
PIN, subscribe a viewer in the room and return Janus's offer; the browser's answer goes to
``POST .../watch/{viewer}/answer``, and the media flows between the browser and Janus, never
through the controller, which keeps the viewer's Janus session alive meanwhile. ``DELETE
/api/v1/lessons/{lesson}/watch/{viewer}`` hangs up either kind. Watching changes nothing,
so every staff role may do it (see ``controller.auth.roles.READ_ACTIONS``), within their
school scope: only lessons and feeds of their school's classrooms. Who watched which feeds
is written to the audit log: ``watch`` when the viewer opens, ``watch_end`` with its
duration when it closes (hung up; its connection lost; on Janus also a refused or missing
answer, or the instance lost). Only the viewer's own session, or an admin, may hang it up.

Several controllers: only the leader relays lessons. A controller that does not lead asks
the leader (``PatrolLeader``, through the database's LISTEN/NOTIFY) for the live list and
for each viewer's answer, after checking the caller's scope and auditing here; the
viewer's media then flows between the browser and the leader's relay, which holds the
viewer and writes its ``watch_end``. A hang-up reaching any controller goes to the leader,
which checks that it comes from the viewer's own session or an admin. A lesson on Janus
the same way: the leader, which holds the room's PIN, makes the viewer's subscription and
holds its Janus session; the offer and the browser's answer pass through the controller
the console uses, and the media flows between the browser and Janus.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from controller.auth import audit
from controller.auth.middleware import principal_of, scope_of, viewer_key
from controller.auth.roles import ADMIN
from controller.auth.scope import Scope
from controller.auth.web_sessions import Principal
from controller.common.api_common import error
from controller.lessons.live_list import Relays, live_document, scoped_live
from controller.lessons.patrol_janus import JanusFeeds, Listing, Rooms, match_streams, parse_answer
from controller.media_plane.viewers import AlreadyAnswered, AnswerRefused, JanusViewer, ViewerError
from controller.relay.exceptions import RelayUnavailable
from controller.relay.handle import RelayHandle
from controller.relay.room import FeedRef, SignallingError

# A Janus viewer whose browser has not answered Janus's offer by then is closed.
ANSWER_TIMEOUT_S = 30.0
ANOTHER_SESSION = "belongs to another session"
MAX_FEEDS = 64  # a lesson's classrooms times their tracks, with room to spare


def rooms_of(relays: object) -> Rooms | None:
    """The orchestrator's lesson rooms on Janus, if it places lessons there."""
    rooms = getattr(relays, "media", None)
    return rooms if rooms is not None and hasattr(rooms, "placement") else None


class PatrolLeader(Protocol):
    """The leading controller, as a controller that does not lead reaches it."""

    def leads_here(self) -> bool:
        """Whether this controller leads (and so relays) now."""

    async def ask(self, what: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The leader's answer; ``LeaderRefused`` (a ConnectionError) with its reason,
        other ``ConnectionError``s and ``TimeoutError`` when it cannot be reached."""


class NotRelayed(ConnectionError):
    """No such lesson relayed, or no such viewer (a 404)."""


def _feed_list(feeds: list[FeedRef]) -> list[list[str]]:
    return [[f.classroom, f.track, f.kind] for f in feeds]


class LeaderSaid(ConnectionError):
    """The relay refused the request (a bad offer: 400; another's viewer: 403)."""


def parse_feeds(body: dict[str, Any]) -> list[FeedRef]:
    """The ``feeds`` of a watch request; ValueError says which entry is wrong."""
    raw = body.get("feeds")
    if not isinstance(raw, list) or not raw:
        raise ValueError("'feeds' must be a non-empty list of {classroom, track, kind}")
    if len(raw) > MAX_FEEDS:
        raise ValueError(f"'feeds' lists {len(raw)} feeds; at most {MAX_FEEDS} per viewer")
    feeds = []
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("classroom", "track", "kind")
        ):
            raise ValueError(f"feeds[{n}] must be {{classroom, track, kind}} strings, got {item!r}")
        if item["kind"] not in ("video", "audio"):
            raise ValueError(f"feeds[{n}].kind must be 'video' or 'audio', not {item['kind']!r}")
        feeds.append(FeedRef(item["classroom"], item["track"], item["kind"]))
    return feeds


def parse_watch(body: object) -> tuple[str, list[FeedRef]]:
    """``(sdp, feeds)`` from a watch request; ValueError says which field is wrong."""
    if not isinstance(body, dict):
        raise ValueError('body must be {"sdp": <offer>, "feeds": [{"classroom", "track", "kind"}]}')
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ValueError("'sdp' must be the browser's SDP offer (a string starting 'v=0')")
    return sdp, parse_feeds(body)


def parse_janus_watch(body: object) -> list[FeedRef]:
    """The feeds of a watch request for a lesson on Janus (Janus makes the offer)."""
    if not isinstance(body, dict):
        raise ValueError('body must be {"feeds": [{"classroom", "track", "kind"}]}')
    if "sdp" in body:
        raise ValueError(
            "this lesson is carried by Janus, which makes the offer: POST only 'feeds', then "
            "POST the browser's answer to .../watch/{viewer}/answer"
        )
    return parse_feeds(body)


@dataclass
class Watching:
    """One open patrol viewer: whose it is and since when."""

    lesson: str
    viewer: str
    holder: str  # viewer_key() of the session (or token user) that opened it
    principal: Principal
    remote: str
    feeds: list[str]
    started: float = field(default_factory=time.monotonic)
    ended_by: str = ""  # who hung up; empty: the connection closed by itself
    janus: JanusViewer | None = None  # a viewer subscribed in the lesson's Janus room


class PatrolApi:
    """Routes of the patrol view; the orchestrator is looked up per request because the
    HTTP API starts before it. Holds the open viewers (who watches what, since when)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        relays: Callable[[], Relays | None],
        online: Callable[[], list[str]],
    ) -> None:
        self._sessions = sessions
        self._relays = relays
        self._online = online
        self._watching: dict[str, Watching] = {}
        self._janus_feeds = JanusFeeds()
        self.leader: PatrolLeader | None = None  # several controllers: set by the daemon

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the controller's application."""
        return [
            web.get("/api/v1/live", self.live),
            web.post("/api/v1/lessons/{lesson}/watch", self.watch),
            web.delete("/api/v1/lessons/{lesson}/watch/{viewer}", self.unwatch),
            web.post("/api/v1/lessons/{lesson}/watch/{viewer}/answer", self.answer),
        ]

    def _elsewhere(self) -> PatrolLeader | None:
        """The leader to ask, when another controller relays the lessons."""
        leader = self.leader
        return leader if leader is not None and not leader.leads_here() else None

    async def live(self, request: web.Request) -> web.Response:
        """The live lessons with feeds and QoS."""
        relays, online = self._relays(), set(self._online())
        scope = scope_of(request)
        leader = self._elsewhere()
        remote: list[dict[str, Any]] | None = None
        if leader is not None:
            try:
                remote = list((await leader.ask("patrol.live", {}))["lessons"])
            except (ConnectionError, TimeoutError, KeyError, TypeError) as err:
                return error(503, f"the leading controller, which relays the lessons: {err}")

        janus = await self._janus_listings(relays) if remote is None else {}
        viewers = self._janus_viewer_counts()

        def job() -> list[dict[str, Any]]:
            with self._sessions() as db:
                lessons = (
                    remote
                    if remote is not None
                    else live_document(db, relays, online, janus, viewers)
                )
                return scoped_live(db, scope, lessons)

        return web.json_response(await asyncio.to_thread(job))

    async def _janus_listings(self, relays: Relays | None) -> dict[str, Listing]:
        """The streams in the Janus room of each lesson this controller carries there."""
        rooms = rooms_of(relays)
        if relays is None or rooms is None:
            return {}
        ids = list(relays.runs)
        self._janus_feeds.forget(set(ids))
        for w in list(self._watching.values()):
            # The lesson ended (or left Janus) under its viewer: nothing more to watch.
            if w.janus is not None and (
                w.lesson not in relays.runs or not rooms.placement(w.lesson)
            ):
                w.ended_by = w.ended_by or "the lesson is no longer on Janus"
                await w.janus.close(w.ended_by)
        listings = await asyncio.gather(*(self._janus_feeds.streams(rooms, i) for i in ids))
        return {i: x for i, x in zip(ids, listings, strict=True) if x is not None}

    def _janus_viewer_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for w in self._watching.values():
            if w.janus is not None:
                counts[w.lesson] = counts.get(w.lesson, 0) + 1
        return counts

    async def serve_live(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The leader's live list for another controller (which applies the scope)."""
        relays, online = self._relays(), set(self._online())
        janus, viewers = await self._janus_listings(relays), self._janus_viewer_counts()

        def job() -> list[dict[str, Any]]:
            with self._sessions() as db:
                return live_document(db, relays, online, janus, viewers)

        return {"lessons": await asyncio.to_thread(job)}

    def _relay(self, lesson_id: str) -> RelayHandle | None:
        relays = self._relays()
        return relays.relay_for(lesson_id) if relays is not None else None

    async def watch(self, request: web.Request) -> web.Response:
        """Answer a browser's receive-only offer for some of a live lesson's feeds."""
        lesson_id = request.match_info["lesson"]
        if self._janus_placement(lesson_id) is not None:
            return await self._watch_janus(request, lesson_id)
        relay = self._relay(lesson_id)
        leader = self._elsewhere()
        if relay is None and leader is None:
            return error(
                404,
                f"lesson {lesson_id} is not being relayed by this controller now; "
                "GET /api/v1/live lists the lessons you can watch",
            )
        try:
            body = await request.json()
        except ValueError:
            body = None
        if relay is None and leader is not None and isinstance(body, dict) and "sdp" not in body:
            # Janus's way (feeds only): the leader carries the lesson and holds its room.
            return await self._watch_janus(request, lesson_id, leader)
        try:
            sdp, feeds = parse_watch(body)
        except ValueError as err:
            return error(400, f"watch {lesson_id}: {err}")
        watching = await self._viewer_for(request, lesson_id, feeds)
        if isinstance(watching, web.Response):
            return watching
        viewer = watching.viewer

        if relay is None:
            assert leader is not None
            try:
                answer = await self._watch_at_leader(leader, watching, sdp, feeds)
            except NotRelayed as err:
                return error(404, f"watch {lesson_id}: {err}")
            except LeaderSaid as err:
                return error(400, f"watch {lesson_id}: {err}")
            except (ConnectionError, TimeoutError, KeyError, TypeError) as err:
                return error(503, f"watch {lesson_id}: the leading controller: {err}")
        else:
            try:
                answer = await self._open(relay, watching, sdp, feeds)
            except SignallingError as err:
                return error(400, f"watch {lesson_id}: {err}")
            except RelayUnavailable as err:
                return error(503, f"watch {lesson_id}: {err}")
        await asyncio.to_thread(
            self._audit,
            watching,
            "watch",
            request.path,
            {"status": 201, "viewer": viewer, "feeds": watching.feeds},
        )
        return web.json_response({"sdp": answer, "type": "answer", "viewer": viewer}, status=201)

    async def _viewer_for(
        self, request: web.Request, lesson_id: str, feeds: list[FeedRef]
    ) -> Watching | web.Response:
        """A new viewer of ``feeds`` for the caller, or a 403 naming the feeds outside the
        caller's school scope."""
        scope = scope_of(request)
        sources = sorted({f.classroom for f in feeds})
        seen = await asyncio.to_thread(self._visible, scope, sources)
        hidden = [c for c in sources if c not in seen]
        if hidden:
            return error(
                403,
                f"watch {lesson_id}: feeds of {', '.join(hidden)} are outside "
                f"{scope.describe()}; GET /api/v1/live lists the feeds you may watch",
            )
        principal = principal_of(request)
        return Watching(
            lesson_id,
            "v-" + secrets.token_urlsafe(9),
            viewer_key(principal),
            principal,
            request.remote or "",
            [f"{f.classroom}/{f.track}" for f in feeds],
        )

    async def _open(
        self, relay: RelayHandle, watching: Watching, sdp: str, feeds: list[FeedRef]
    ) -> str:
        """Open the viewer on this controller's relay; its SDP answer."""

        async def closed() -> None:
            await self._ended(watching)

        answer = await relay.answer_viewer(watching.viewer, sdp, feeds, on_close=closed)
        self._watching[watching.viewer] = watching
        return answer

    def _janus_placement(self, lesson_id: str) -> Any:
        """The lesson's Janus placement, when this controller carries it in a Janus room."""
        relays = self._relays()
        rooms = rooms_of(relays)
        if relays is None or rooms is None or lesson_id not in relays.runs:
            return None
        return rooms.placement(lesson_id)

    async def _watch_janus(
        self, request: web.Request, lesson_id: str, leader: PatrolLeader | None = None
    ) -> web.Response:
        """Subscribe a viewer in the lesson's Janus room (here, or at the ``leader`` that
        carries it); Janus's offer for the browser, whose answer comes to ``answer``.
        Media flows between the browser and Janus."""
        try:
            feeds = parse_janus_watch(await request.json())
        except ValueError as err:
            return error(400, f"watch {lesson_id}: {err}")
        watching = await self._viewer_for(request, lesson_id, feeds)
        if isinstance(watching, web.Response):
            return watching
        viewer = watching.viewer
        try:
            if leader is not None:
                payload = {**self._viewer_payload(watching), "feeds": _feed_list(feeds)}
                got = await leader.ask("patrol.watch_janus", payload)
                offer, mids = str(got["sdp"]), [str(m) for m in got["mids"]]
            else:
                offer, mids = await self._open_janus(watching, feeds)
        except NotRelayed as err:
            return error(404, f"watch {lesson_id}: {err}")
        except (ValueError, LeaderSaid) as err:
            return error(400, f"watch {lesson_id}: {err}")
        except (ViewerError, ConnectionError, TimeoutError, KeyError, TypeError) as err:
            return error(503, f"watch {lesson_id}: {err}")
        await asyncio.to_thread(
            self._audit,
            watching,
            "watch",
            request.path,
            {"status": 201, "viewer": viewer, "feeds": watching.feeds, "backend": "janus"},
        )
        return web.json_response(
            {"sdp": offer, "type": "offer", "viewer": viewer, "mids": mids, "backend": "janus"},
            status=201,
        )

    async def _open_janus(self, watching: Watching, feeds: list[FeedRef]) -> tuple[str, list[str]]:
        """Subscribe the viewer in its lesson's room on this controller: Janus's offer and
        each feed's mid in it. ``NotRelayed``: not on Janus here; ``ValueError``: a feed
        not in the room; ``ViewerError``: Janus did not answer."""
        lesson_id = watching.lesson
        rooms = rooms_of(self._relays())
        placement = self._janus_placement(lesson_id)
        if rooms is None or placement is None:
            raise NotRelayed(f"lesson {lesson_id} is not in a Janus room of this controller now")
        listing = await self._janus_feeds.streams(rooms, lesson_id)
        if listing is None or listing.error:
            raise ViewerError(listing.error if listing is not None else "no room")
        streams = match_streams(listing.streams, feeds)

        async def ended(reason: str) -> None:
            if not watching.ended_by:
                watching.ended_by = reason
            await self._ended(watching)

        subscriber = JanusViewer(placement.api_url, placement.room, placement.pin, streams, ended)
        try:
            offer, mids = await subscriber.offer()
        except ViewerError as err:
            raise ViewerError(f"Janus instance {placement.instance}: {err}") from err
        watching.janus = subscriber
        self._watching[watching.viewer] = watching
        asyncio.get_running_loop().call_later(ANSWER_TIMEOUT_S, self._answer_overdue, watching)
        return offer, mids

    async def serve_watch_janus(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another controller's Janus viewer (scope checked and audited there): open it here."""
        watching = self._watching_from(payload)
        feeds = [FeedRef(str(c), str(t), str(k)) for c, t, k in payload["feeds"]]
        try:
            offer, mids = await self._open_janus(watching, feeds)
        except (ValueError, ViewerError) as err:
            raise LeaderSaid(str(err)) from err
        return {"sdp": offer, "mids": mids}

    async def close_janus_viewers(self, why: str) -> None:
        """Hang up every Janus viewer this controller holds (it stops): each one's Janus
        session is freed and its ``watch_end`` written, as when a relay closes."""
        viewers = [w for w in self._watching.values() if w.janus is not None]
        for w in viewers:
            w.ended_by = w.ended_by or why
        await asyncio.gather(
            *(w.janus.close(w.ended_by) for w in viewers if w.janus is not None),
            return_exceptions=True,
        )

    def _answer_overdue(self, w: Watching) -> None:
        if w.janus is not None and not w.janus.answered and w.janus.ended is None:
            w.ended_by = f"no answer from the browser within {ANSWER_TIMEOUT_S:.0f} s"
            asyncio.get_running_loop().create_task(w.janus.close(w.ended_by))

    async def answer(self, request: web.Request) -> web.Response:
        """The browser's SDP answer to Janus's offer for one of its viewers."""
        lesson_id, viewer = request.match_info["lesson"], request.match_info["viewer"]
        holder = viewer_key(principal_of(request))
        try:
            sdp = parse_answer(await request.json())
        except ValueError as err:
            return error(400, f"answer {viewer}: {err}")
        leader = self._elsewhere()
        try:
            if leader is not None and viewer not in self._watching:
                payload = {"lesson": lesson_id, "viewer": viewer, "holder": holder, "sdp": sdp}
                await leader.ask("patrol.answer", payload)
            else:
                await self._answer_here(lesson_id, viewer, holder, sdp)
        except NotRelayed as err:
            return error(404, f"answer {viewer}: {err}")
        except LeaderSaid as err:
            status = 403 if ANOTHER_SESSION in str(err) else 400
            return error(status, f"answer {viewer}: {err}")
        except (ViewerError, ConnectionError, TimeoutError) as err:
            return error(503, f"answer {viewer}: {err}")
        return web.json_response({"viewer": viewer, "started": True})

    async def _answer_here(self, lesson_id: str, viewer: str, holder: str, sdp: str) -> None:
        """Start a viewer of this controller with the browser's answer."""
        w = self._watching.get(viewer)
        if w is None or w.lesson != lesson_id or w.janus is None:
            raise NotRelayed(
                f"no viewer waiting for an answer in lesson {lesson_id} (closed, timed out, "
                "or not a Janus viewer); POST .../watch again"
            )
        if holder != w.holder:
            raise LeaderSaid(
                f"the viewer {ANOTHER_SESSION} ({w.principal.username}); only the session "
                "that opened it may answer"
            )
        try:
            await w.janus.answer(sdp)
        except AlreadyAnswered as err:
            raise LeaderSaid(str(err)) from err
        except AnswerRefused as err:
            # A viewer Janus cannot start holds a handle for nothing: closed now.
            w.ended_by = "bad answer"
            await w.janus.close(w.ended_by)
            raise LeaderSaid(
                f"{err}; the viewer is closed: answer Janus's offer as given "
                "(setRemoteDescription, createAnswer) in a new watch"
            ) from err

    async def serve_answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another controller's browser answers a viewer held here."""
        await self._answer_here(
            str(payload["lesson"]),
            str(payload["viewer"]),
            str(payload["holder"]),
            str(payload["sdp"]),
        )
        return {"started": True}

    def _viewer_payload(self, w: Watching) -> dict[str, Any]:
        """A viewer as the leader is told of it."""
        return {
            "lesson": w.lesson,
            "viewer": w.viewer,
            "holder": w.holder,
            "username": w.principal.username,
            "display_name": w.principal.display_name,
            "role": w.principal.role,
            "via": w.principal.via,
            "remote": w.remote,
        }

    def _watching_from(self, payload: dict[str, Any]) -> Watching:
        """A viewer as another controller described it (``_viewer_payload``)."""
        principal = Principal(
            username=str(payload["username"]),
            display_name=str(payload.get("display_name", "")),
            role=str(payload["role"]),
            via=str(payload["via"]),
        )
        return Watching(
            str(payload["lesson"]),
            str(payload["viewer"]),
            str(payload["holder"]),
            principal,
            str(payload.get("remote", "")),
            [f"{c}/{t}" for c, t, _ in payload["feeds"]],
        )

    async def _watch_at_leader(
        self, leader: PatrolLeader, w: Watching, sdp: str, feeds: list[FeedRef]
    ) -> str:
        payload = {
            "lesson": w.lesson,
            "viewer": w.viewer,
            "holder": w.holder,
            "username": w.principal.username,
            "display_name": w.principal.display_name,
            "role": w.principal.role,
            "via": w.principal.via,
            "remote": w.remote,
            "sdp": sdp,
            "feeds": [[f.classroom, f.track, f.kind] for f in feeds],
        }
        return str((await leader.ask("patrol.watch", payload))["sdp"])

    async def serve_watch(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another controller's viewer (scope checked and audited there): open it here."""
        lesson = str(payload["lesson"])
        relay = self._relay(lesson)
        if relay is None:
            raise NotRelayed(f"lesson {lesson} is not being relayed now")
        principal = Principal(
            username=str(payload["username"]),
            display_name=str(payload.get("display_name", "")),
            role=str(payload["role"]),
            via=str(payload["via"]),
        )
        feeds = [FeedRef(str(c), str(t), str(k)) for c, t, k in payload["feeds"]]
        watching = Watching(
            lesson,
            str(payload["viewer"]),
            str(payload["holder"]),
            principal,
            str(payload.get("remote", "")),
            [f"{f.classroom}/{f.track}" for f in feeds],
        )
        try:
            return {"sdp": await self._open(relay, watching, str(payload["sdp"]), feeds)}
        except SignallingError as err:
            raise LeaderSaid(str(err)) from err

    async def unwatch(self, request: web.Request) -> web.Response:
        """Hang up one viewer: the session that opened it may, and an admin may."""
        lesson_id, viewer = request.match_info["lesson"], request.match_info["viewer"]
        principal = principal_of(request)
        leader = self._elsewhere()
        if leader is not None and viewer not in self._watching:
            payload = {
                "lesson": lesson_id,
                "viewer": viewer,
                "holder": viewer_key(principal),
                "username": principal.username,
                "admin": principal.role == ADMIN,
            }
            try:
                await leader.ask("patrol.unwatch", payload)
            except NotRelayed as err:
                return error(404, str(err))
            except LeaderSaid as err:
                return error(403, str(err))
            except (ConnectionError, TimeoutError) as err:
                return error(503, f"unwatch {viewer}: the leading controller: {err}")
            return web.json_response({"closed": viewer})
        try:
            await self._close(
                lesson_id,
                viewer,
                viewer_key(principal),
                principal.username,
                principal.role == ADMIN,
            )
        except NotRelayed as err:
            return error(404, str(err))
        except LeaderSaid as err:
            return error(403, str(err))
        except RelayUnavailable as err:
            return error(503, f"unwatch {viewer}: {err}")
        return web.json_response({"closed": viewer})

    async def serve_unwatch(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another controller's hang-up: the same checks as here."""
        await self._close(
            str(payload["lesson"]),
            str(payload["viewer"]),
            str(payload["holder"]),
            str(payload["username"]),
            bool(payload.get("admin")),
        )
        return {"closed": str(payload["viewer"])}

    async def _close(
        self, lesson_id: str, viewer: str, holder: str, username: str, admin: bool
    ) -> None:
        watching = self._watching.get(viewer)
        if watching is not None and watching.janus is not None and watching.lesson == lesson_id:
            if holder != watching.holder and not admin:
                raise LeaderSaid(
                    f"viewer {viewer} belongs to another session "
                    f"({watching.principal.username}); only that session or an admin may close it"
                )
            watching.ended_by = username
            await watching.janus.close(f"hung up by {username}")
            return
        relay = self._relay(lesson_id)
        if relay is None or watching is None or watching.lesson != lesson_id:
            raise NotRelayed(f"no viewer {viewer} in lesson {lesson_id} (already closed?)")
        if holder != watching.holder and not admin:
            raise LeaderSaid(
                f"viewer {viewer} belongs to another session ({watching.principal.username}); "
                "only that session or an admin may close it"
            )
        watching.ended_by = username
        if not await relay.close_viewer(viewer):
            raise NotRelayed(f"no viewer {viewer} in lesson {lesson_id} (already closed?)")

    def _visible(self, scope: Scope, classrooms: list[str]) -> list[str]:
        with self._sessions() as db:
            return scope.keep(db, classrooms)

    def _audit(self, w: Watching, action: str, target: str, detail: dict[str, Any]) -> None:
        with self._sessions() as db:
            audit.record(
                db,
                action,
                username=w.principal.username,
                role=w.principal.role,
                target=target,
                detail={"via": w.principal.via, **detail},
                remote=w.remote,
            )

    async def _ended(self, w: Watching) -> None:
        """The viewer closed: write 'watch_end' with how long it watched."""
        self._watching.pop(w.viewer, None)
        detail = {
            "viewer": w.viewer,
            "feeds": w.feeds,
            "duration_s": round(time.monotonic() - w.started, 1),
            "ended_by": w.ended_by or "connection closed",
        }
        if w.janus is not None:
            detail["backend"] = "janus"
        target = f"/api/v1/lessons/{w.lesson}/watch/{w.viewer}"
        await asyncio.to_thread(self._audit, w, "watch_end", target, detail)
