"""The wire between the controller and its relay process: typed messages, length-prefixed.

Each frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. The
controller sends ``Request``s; the relay process answers each with a ``Reply`` of the
same id, and on its own sends ``Figures`` (every lesson's feed counters, once a second)
and ``ViewerClosed`` (a console viewer's connection ended, however it ended).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from protocols.messages import TrackMid

MAX_FRAME = 4 * 1024 * 1024  # an SDP is a few kB; anything near this is a bug
_LENGTH = struct.Struct(">I")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Message):
    """An agent's media offer, to be answered by its lesson's relay."""

    op: Literal["answer"] = "answer"
    lesson: str
    classroom: str
    sdp: str
    tracks: list[TrackMid]


class Disconnect(_Message):
    """Close one classroom's connection to its lesson's relay."""

    op: Literal["disconnect"] = "disconnect"
    lesson: str
    classroom: str


class FeedAsked(_Message):
    """One feed a console viewer asks for."""

    classroom: str
    track: str
    kind: str


class AnswerViewer(_Message):
    """A console viewer's receive-only offer."""

    op: Literal["answer_viewer"] = "answer_viewer"
    lesson: str
    viewer: str
    sdp: str
    feeds: list[FeedAsked]


class CloseViewer(_Message):
    """Hang up one console viewer."""

    op: Literal["close_viewer"] = "close_viewer"
    lesson: str
    viewer: str


class CloseLesson(_Message):
    """Close every connection and feed of a lesson."""

    op: Literal["close"] = "close"
    lesson: str


class Snapshot(_Message):
    """Every lesson's figures, now."""

    op: Literal["snapshot"] = "snapshot"


Call = Annotated[
    Answer | Disconnect | AnswerViewer | CloseViewer | CloseLesson | Snapshot,
    Field(discriminator="op"),
]


class Request(_Message):
    """One call from the controller; answered by the ``Reply`` with its id."""

    kind: Literal["request"] = "request"
    id: int
    call: Call


class FeedFigures(_Message):
    """One feed's counters (the keys of ``LessonRelay.stats()``) and its last frame."""

    classroom: str
    track: str
    kind: str
    frames_in: int
    bytes_in: int
    subscribers: int
    keyframe_requests: int
    dropped: int
    # time.monotonic() of the last frame received; CLOCK_MONOTONIC is shared by every
    # process on the machine, so the controller computes its age.
    last_frame: float | None


class LessonFigures(_Message):
    """One lesson's feeds and open console viewers."""

    feeds: list[FeedFigures] = []
    viewers: list[str] = []


ErrorKind = Literal["signalling", "value", "internal"]


class Reply(_Message):
    """The answer to one ``Request``: a value, or an error of a kind the caller raises."""

    kind: Literal["reply"] = "reply"
    id: int
    sdp: str | None = None
    closed: bool | None = None
    error_kind: ErrorKind | None = None
    error: str = ""
    # The lessons the call touched (every lesson for a Snapshot), as they stand after it.
    lessons: dict[str, LessonFigures] = {}


class Figures(_Message):
    """Every lesson's figures, sent by the relay process unasked."""

    kind: Literal["figures"] = "figures"
    lessons: dict[str, LessonFigures]


class ViewerClosed(_Message):
    """A console viewer's connection ended (hung up, failed or its lesson closed)."""

    kind: Literal["viewer_closed"] = "viewer_closed"
    lesson: str
    viewer: str


FromRelay = Annotated[Reply | Figures | ViewerClosed, Field(discriminator="kind")]
_TO = TypeAdapter(Request)
_FROM: TypeAdapter[Reply | Figures | ViewerClosed] = TypeAdapter(FromRelay)


class FrameError(ValueError):
    """A frame that is too long, cut short or not a message of this wire."""


def encode(message: _Message) -> bytes:
    """One frame: the length, then the message as JSON."""
    body = message.model_dump_json().encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"a {type(message).__name__} of {len(body)} bytes is over {MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as err:
        if err.partial:
            raise FrameError("the relay link closed inside a frame's length") from None
        return None  # closed between frames: the other side has gone
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes is over {MAX_FRAME}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError(f"the relay link closed inside a frame of {size} bytes") from None


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The controller's next request; None once the controller has gone."""
    frame = await _read_frame(reader)
    if frame is None:
        return None
    try:
        return _TO.validate_json(frame)
    except ValidationError as err:
        raise FrameError(f"not a relay request: {err}") from None


async def read_from_relay(reader: asyncio.StreamReader) -> Reply | Figures | ViewerClosed | None:
    """The relay process's next message; None once it has gone."""
    frame = await _read_frame(reader)
    if frame is None:
        return None
    try:
        return _FROM.validate_json(frame)
    except ValidationError as err:
        raise FrameError(f"not a relay message: {err}") from None
