"""Activity detection for the director (导播) on small, low-rate grayscale frames.

The caller hands each detector a small grayscale copy of a camera's picture (the Y plane
of a decoded frame scaled down to e.g. 320x180, about 5 times a second) and the time it
was taken, in seconds. Every detector first scales the picture to its own working width
(160 or 320 pixels wide) with ``INTER_AREA``, so its thresholds, all given as fractions of
the frame, mean the same at any input size and its cost stays fixed.

* :class:`TeacherDetector` — the teacher camera. A MOG2 background model separates the
  teacher from the room; the largest foreground blob after morphology is the teacher. The
  blob's centre is fitted over about a second: faster than ``walk_speed`` frame widths per
  second is walking. The teacher is "at the board" when the centre is inside ``board``.
* :class:`StudentDetector` — the student camera. Seated students fidget, which makes small,
  low or hollow blobs; a student standing up makes a tall, upright, solid blob reaching
  into the upper part of the frame. While someone stands the background model stops
  learning (up to ``max_stand_s``), so a student standing still is not absorbed into the
  background, and sitting down makes the blob disappear instead of leaving a "ghost".
* :class:`BoardDetector` — the board camera, or the panel's content. Pen strokes are small
  changes that stay: pixels that differ from the known board but did not change since the
  previous frame. Each frame that adds a stroke-sized amount of such pixels is a stroke,
  and those pixels join the known board. Several strokes within ``window_s`` and no big
  motion (someone walking past) for ``quiet_s`` is writing.

The two MOG2 models take the first frame they see as the empty scene: start the detectors
before the lesson (a teacher already standing in view leaves a "ghost" blob where they
stood until it is absorbed, ``absorb_s``). The thresholds suit a camera framing the whole
front (teacher) or the whole class (students); a classroom whose cameras frame things
very differently sets its own, chiefly the regions and the students' ``min_height``.

The detectors keep state between frames and are not thread-safe: feed each from one thread.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

Gray = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle in fractions of the frame (0 = left/top edge, 1 = right/bottom edge)."""

    left: float
    top: float
    right: float
    bottom: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.left < self.right <= 1.0 and 0.0 <= self.top < self.bottom <= 1.0):
            raise ValueError(
                f"region ({self.left}, {self.top}, {self.right}, {self.bottom}) must satisfy "
                "0 ≤ left < right ≤ 1 and 0 ≤ top < bottom ≤ 1"
            )

    def contains(self, x: float, y: float) -> bool:
        """Whether the point (fractions of the frame) lies inside."""
        return self.left <= x <= self.right and self.top <= y <= self.bottom

    def slices(self, width: int, height: int) -> tuple[slice, slice]:
        """Row and column slices of this region in a ``width`` x ``height`` picture."""
        x0, y0 = round(self.left * width), round(self.top * height)
        x1 = max(round(self.right * width), x0 + 1)
        y1 = max(round(self.bottom * height), y0 + 1)
        return slice(y0, y1), slice(x0, x1)


FULL_FRAME = Region(0.0, 0.0, 1.0, 1.0)


def u8(image: object) -> Gray:
    """An OpenCV result as a typed ``uint8`` array (OpenCV's stubs say only "an array")."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array from OpenCV, got {type(image).__name__}")
    return image


def to_work_size(gray: Gray, work_width: int) -> Gray:
    """``gray`` scaled (area averaging) to ``work_width`` wide, or as is if not wider."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grayscale array, got {gray.dtype} {gray.shape}")
    h, w = gray.shape
    if w <= work_width:
        return np.ascontiguousarray(gray)
    height = max(1, round(h * work_width / w))
    return u8(cv2.resize(gray, (work_width, height), interpolation=cv2.INTER_AREA))


def _kernel(size: int) -> Gray:
    return u8(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


BACKGROUND_RATIO = 0.9  # MOG2's default: a mode is background once it holds 10 % weight


def learning_rate(absorb_s: float, fps: float) -> float:
    """MOG2 learning rate that makes a new, still thing background after ``absorb_s``.

    A new mode's weight after ``n`` frames is ``1 - (1 - a)^n``; it becomes background when
    that passes ``1 - BACKGROUND_RATIO``, i.e. ``n ≈ -ln(BACKGROUND_RATIO) / a``.
    """
    return -math.log(BACKGROUND_RATIO) / max(1.0, absorb_s * fps)


class Background:
    """A MOG2 background model learning at a fixed rate, started afresh when most of the
    picture changes at once (the lights, the camera moved or its exposure jumped).

    Whatever the first frame shows is background: start it on an empty room if possible.
    """

    def __init__(
        self, var_threshold: float, absorb_s: float, fps: float, global_change: float
    ) -> None:
        self.var_threshold, self.global_change = var_threshold, global_change
        self.rate = learning_rate(absorb_s, fps)
        self._mog: cv2.BackgroundSubtractorMOG2 | None = None
        self.resets = 0

    def foreground(self, small: Gray, *, learn: bool = True) -> Gray | None:
        """The foreground mask of ``small``, or None when the model (re)starts with it."""
        if self._mog is not None:
            fg = u8(self._mog.apply(small, learningRate=self.rate if learn else 0.0))
            if cv2.countNonZero(fg) <= self.global_change * fg.size:
                return fg
            self.resets += 1
        self._mog = cv2.createBackgroundSubtractorMOG2(
            varThreshold=self.var_threshold, detectShadows=False
        )
        self._mog.setBackgroundRatio(BACKGROUND_RATIO)
        self._mog.apply(small)
        return None


@dataclass(frozen=True, slots=True)
class Blob:
    """One foreground blob, in fractions of the frame."""

    x: float  # centre (centroid)
    y: float
    left: float
    top: float
    width: float
    height: float
    area: float  # fraction of the frame's area


def _blobs(mask: Gray, min_area: float) -> list[Blob]:
    """Connected foreground blobs of at least ``min_area`` (fraction of the frame)."""
    h, w = mask.shape
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    total = float(w * h)
    found = []
    for i in range(1, count):
        area = float(stats[i, cv2.CC_STAT_AREA]) / total
        if area < min_area:
            continue
        found.append(
            Blob(
                x=float(centroids[i, 0]) / w,
                y=float(centroids[i, 1]) / h,
                left=float(stats[i, cv2.CC_STAT_LEFT]) / w,
                top=float(stats[i, cv2.CC_STAT_TOP]) / h,
                width=float(stats[i, cv2.CC_STAT_WIDTH]) / w,
                height=float(stats[i, cv2.CC_STAT_HEIGHT]) / h,
                area=area,
            )
        )
    return found


def _clean(mask: Gray, open_px: int, close_px: int) -> Gray:
    """Remove speckle (opening), then join the parts of one body (closing)."""
    out = u8(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _kernel(open_px)))
    if close_px > 1:
        out = u8(cv2.morphologyEx(out, cv2.MORPH_CLOSE, _kernel(close_px)))
    return out


# --------------------------------------------------------------------------- teacher


@dataclass(frozen=True, slots=True)
class TeacherSettings:
    """Thresholds of :class:`TeacherDetector`; lengths are fractions of the frame."""

    work_width: int = 160
    """Frames are scaled to this width before anything else (160 → 160x90 for 16:9)."""
    fps: float = 5.0
    """The rate the caller feeds at; turns ``absorb_s`` into MOG2's learning rate."""
    absorb_s: float = 120.0
    """About how long someone standing still stays foreground before joining the room."""
    var_threshold: float = 25.0
    """MOG2's squared-distance threshold: higher ignores more noise and more of the teacher."""
    min_blob: float = 0.004
    """Smallest blob, as a fraction of the frame's area, that can be the teacher."""
    global_change: float = 0.5
    """More foreground than this fraction is the lights or the camera, not the teacher: the
    background model is started afresh."""
    walk_speed: float = 0.06
    """Centre speed, in frame widths per second, above which the teacher is walking."""
    stop_ratio: float = 0.6
    """Walking ends when the speed drops below ``walk_speed * stop_ratio`` (hysteresis)."""
    speed_window_s: float = 1.0
    """The speed is the slope of the centre's positions over this long."""
    present_hold_s: float = 2.0
    """The teacher stays present this long after the blob was last seen."""
    board: Region = Region(0.2, 0.0, 0.8, 1.0)
    """Where the board is in this camera's view; a centre inside it is "at the board"."""


@dataclass(frozen=True, slots=True)
class TeacherActivity:
    """What :class:`TeacherDetector` saw in one frame."""

    t: float
    present: bool
    moving: bool
    at_board: bool
    x: float | None = None  # the teacher's centre, fractions of the frame
    y: float | None = None
    speed: float = 0.0  # frame widths per second, fitted over ``speed_window_s``
    blob: float = 0.0  # the teacher blob's area, fraction of the frame


class TeacherDetector:
    """Finds the teacher in the teacher camera's frames and tells walking from standing."""

    def __init__(self, settings: TeacherSettings | None = None) -> None:
        self.settings = settings or TeacherSettings()
        s = self.settings
        self._bg = Background(s.var_threshold, s.absorb_s, s.fps, s.global_change)
        self._track: deque[tuple[float, float, float]] = deque()
        self._aspect = 16 / 9
        self._last_seen: float | None = None
        self._last_xy: tuple[float, float] | None = None
        self._moving = False

    @property
    def resets(self) -> int:
        """How often the background model was started afresh after a whole-frame change."""
        return self._bg.resets

    def feed(self, gray: Gray, t: float) -> TeacherActivity:
        """Take one frame captured at ``t`` seconds; returns what is seen now."""
        s = self.settings
        small = to_work_size(gray, s.work_width)
        h, w = small.shape
        self._aspect = w / h
        fg = self._bg.foreground(small)
        if fg is None:
            self._track.clear()
        blobs = [] if fg is None else _blobs(_clean(fg, 3, 7), s.min_blob)
        teacher = max(blobs, key=lambda b: b.area, default=None)
        if teacher is not None:
            self._last_seen, self._last_xy = t, (teacher.x, teacher.y)
            self._track.append((t, teacher.x, teacher.y))
        while self._track and self._track[0][0] < t - s.speed_window_s:
            self._track.popleft()
        speed = self._speed()
        limit = s.walk_speed * (s.stop_ratio if self._moving else 1.0)
        self._moving = speed > limit
        present = self._last_seen is not None and t - self._last_seen <= s.present_hold_s
        if not present:
            self._last_xy = None
        x, y = self._last_xy if self._last_xy is not None else (None, None)
        return TeacherActivity(
            t=t,
            present=present,
            moving=self._moving and present,
            at_board=x is not None and y is not None and s.board.contains(x, y),
            x=x,
            y=y,
            speed=speed,
            blob=teacher.area if teacher is not None else 0.0,
        )

    def _speed(self) -> float:
        """Least-squares speed of the centre over the window, in frame widths per second."""
        n = len(self._track)
        if n < 3 or self._track[-1][0] - self._track[0][0] < 0.5 * self.settings.speed_window_s:
            return 0.0
        ts = [p[0] for p in self._track]
        mean_t = sum(ts) / n
        var_t = sum((ti - mean_t) ** 2 for ti in ts)
        if var_t <= 0:
            return 0.0
        vx = sum((ti - mean_t) * p[1] for ti, p in zip(ts, self._track, strict=True)) / var_t
        vy = sum((ti - mean_t) * p[2] for ti, p in zip(ts, self._track, strict=True)) / var_t
        return math.hypot(vx, vy / self._aspect)  # y in frame heights → frame widths


# --------------------------------------------------------------------------- students


@dataclass(frozen=True, slots=True)
class StudentSettings:
    """Thresholds of :class:`StudentDetector`; lengths are fractions of the frame."""

    work_width: int = 160
    """Frames are scaled to this width before anything else."""
    fps: float = 5.0
    """The rate the caller feeds at; turns ``absorb_s`` into MOG2's learning rate."""
    absorb_s: float = 20.0
    """About how long a changed, then still, part of the seated class stays foreground."""
    var_threshold: float = 25.0
    """MOG2's squared-distance threshold."""
    area: Region = FULL_FRAME
    """Where the students are in this camera's view; motion elsewhere is ignored."""
    min_blob: float = 0.003
    """Smallest blob, as a fraction of the frame's area, that can be a standing student."""
    min_height: float = 0.25
    """A standing student's blob is at least this tall, in frame heights; fidgeting is not."""
    min_aspect: float = 1.3
    """… and at least this many times taller than wide (a row shifting is wide and low)."""
    min_fill: float = 0.6
    """… and fills at least this much of its bounding box: a body that rose is solid, a
    seated student shifting sideways shows as hollow outlines."""
    upper: float = 0.6
    """… and its top is above this line (fraction of the height from the top)."""
    global_change: float = 0.5
    """More foreground than this fraction restarts the background model (lights, camera)."""
    max_stand_s: float = 120.0
    """The model does not learn while someone stands, for at most this long."""
    release_s: float = 0.4
    """``standing`` stays true this long after the blob was last seen (a missed frame)."""


@dataclass(frozen=True, slots=True)
class StudentActivity:
    """What :class:`StudentDetector` saw in one frame."""

    t: float
    standing: bool
    x: float | None = None  # the standing student's centre, fractions of the frame
    y: float | None = None
    height: float = 0.0  # the tallest blob's height, frame heights
    blobs: int = 0  # foreground blobs above ``min_blob`` (fidgeting shows here)


class StudentDetector:
    """Notices a student standing up in the student camera's frames."""

    def __init__(self, settings: StudentSettings | None = None) -> None:
        self.settings = settings or StudentSettings()
        s = self.settings
        self._bg = Background(s.var_threshold, s.absorb_s, s.fps, s.global_change)
        self._stand_since: float | None = None
        self._last_stand: float | None = None
        self._last_xy: tuple[float, float] | None = None

    @property
    def resets(self) -> int:
        """How often the background model was started afresh after a whole-frame change."""
        return self._bg.resets

    def feed(self, gray: Gray, t: float) -> StudentActivity:
        """Take one frame captured at ``t`` seconds; returns what is seen now."""
        s = self.settings
        small = to_work_size(gray, s.work_width)
        h, w = small.shape
        standing_now = self._last_stand is not None and t - self._last_stand <= s.release_s
        frozen = (
            standing_now and self._stand_since is not None and t - self._stand_since < s.max_stand_s
        )
        fg = self._bg.foreground(small, learn=not frozen)
        if fg is None:
            self._stand_since = self._last_stand = self._last_xy = None
            return StudentActivity(t=t, standing=False)
        rows, cols = s.area.slices(w, h)
        area_mask = np.zeros_like(fg)
        area_mask[rows, cols] = fg[rows, cols]
        blobs = _blobs(_clean(area_mask, 3, 5), s.min_blob)
        tall = [
            b
            for b in blobs
            if b.height >= s.min_height
            and b.height >= s.min_aspect * b.width * w / h
            and b.area >= s.min_fill * b.width * b.height
            and b.top <= s.upper
        ]
        best = max(tall, key=lambda b: b.height, default=None)
        if best is not None:
            if self._stand_since is None:
                self._stand_since = t
            self._last_stand, self._last_xy = t, (best.x, best.y)
        standing = self._last_stand is not None and t - self._last_stand <= s.release_s
        if not standing:
            self._stand_since = None
            self._last_xy = None
        x, y = self._last_xy if self._last_xy is not None else (None, None)
        return StudentActivity(
            t=t,
            standing=standing,
            x=x,
            y=y,
            height=max((b.height for b in blobs), default=0.0),
            blobs=len(blobs),
        )


# --------------------------------------------------------------------------- board


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """Thresholds of :class:`BoardDetector`; amounts are fractions of the board region."""

    work_width: int = 320
    """Frames are scaled to this width first; strokes need more pixels than bodies do."""
    region: Region = Region(0.03, 0.03, 0.97, 0.97)
    """The writing surface in this camera's view (or the part of the panel to watch)."""
    blur: int = 3
    """Gaussian blur kernel (odd) applied before comparing, against sensor noise."""
    diff_threshold: int = 20
    """A pixel changed if its luma moved by more than this."""
    motion_dilate: int = 3
    """Changed pixels are grown by this kernel before stable pixels are looked for."""
    ink: Literal["any", "dark", "light"] = "any"
    """Which new marks count: darker than the board (pen on a whiteboard), lighter (chalk
    on a blackboard) or either (a panel). Marks of the wrong sense, such as the board seen
    again where a hand was, join the known board without counting as strokes."""
    min_stroke: float = 0.0001
    """Fewest new, settled pixels in one frame that count as a stroke."""
    max_stroke: float = 0.02
    """More new settled pixels than this in one frame is not a stroke (a body, the lights)."""
    big_motion: float = 0.03
    """Pixels changing from one frame to the next above this is big motion (someone walking)."""
    window_s: float = 1.5
    """Strokes are counted over this long …"""
    min_strokes: int = 2
    """… and at least this many make writing."""
    quiet_s: float = 1.0
    """Writing needs this long without big motion."""
    rebase_s: float = 2.0
    """A large settled change (someone standing in front, the lights) that lasts this long,
    with no big motion, becomes the known board."""


@dataclass(frozen=True, slots=True)
class BoardActivity:
    """What :class:`BoardDetector` saw in one frame."""

    t: float
    writing: bool
    strokes: int = 0  # stroke frames in the last ``window_s``
    new_ink: float = 0.0  # new settled marks this frame, fraction of the region
    settled: float = 0.0  # pixels that differ from the known board and are still
    motion: float = 0.0  # pixels changed since the previous frame, fraction of the region
    big_motion: bool = False


class BoardDetector:
    """Tells writing on the board (or panel) from people moving in front of it."""

    def __init__(self, settings: BoardSettings | None = None) -> None:
        self.settings = settings or BoardSettings()
        self._prev: Gray | None = None
        self._known: Gray | None = None
        self._strokes: deque[float] = deque()
        self._last_big: float | None = None
        self._rebase_since: float | None = None
        self._dilate = _kernel(self.settings.motion_dilate)
        self.rebases = 0

    def _ink(self, cur: Gray, known: Gray, settled: Gray) -> int:
        """How many settled pixels changed the way ink does (see ``BoardSettings.ink``)."""
        if self.settings.ink == "any":
            return cv2.countNonZero(settled)
        if self.settings.ink == "dark":
            delta = cv2.subtract(known, cur)  # saturates: only darker pixels stay above 0
        else:
            delta = cv2.subtract(cur, known)
        _, inked = cv2.threshold(delta, self.settings.diff_threshold, 255, 0)
        return cv2.countNonZero(cv2.bitwise_and(inked, settled))

    def feed(self, gray: Gray, t: float) -> BoardActivity:
        """Take one frame captured at ``t`` seconds; returns what is seen now."""
        s = self.settings
        small = to_work_size(gray, s.work_width)
        h, w = small.shape
        rows, cols = s.region.slices(w, h)
        cur: Gray = np.ascontiguousarray(small[rows, cols])
        if s.blur > 1:
            cur = u8(cv2.GaussianBlur(cur, (s.blur, s.blur), 0))
        known = self._known
        if self._prev is None or known is None or known.shape != cur.shape:
            self._prev, self._known = cur, cur.copy()
            return BoardActivity(t=t, writing=False)
        total = float(cur.size)
        _, moved = cv2.threshold(cv2.absdiff(cur, self._prev), s.diff_threshold, 255, 0)
        motion = cv2.countNonZero(moved) / total
        self._prev = cur
        big = motion > s.big_motion
        if big:
            self._last_big = t
        _, changed = cv2.threshold(cv2.absdiff(cur, known), s.diff_threshold, 255, 0)
        settled = u8(cv2.bitwise_and(changed, cv2.bitwise_not(cv2.dilate(moved, self._dilate))))
        settled_px = cv2.countNonZero(settled)
        new_ink = 0.0
        if not big and settled_px <= s.max_stroke * total:
            if settled_px:
                new_ink = self._ink(cur, known, settled) / total
                np.copyto(known, cur, where=settled > 0)  # it is part of the board now
            if new_ink >= s.min_stroke:
                self._strokes.append(t)
            self._rebase_since = None
        elif not big:
            if self._rebase_since is None:
                self._rebase_since = t
            elif t - self._rebase_since >= s.rebase_s:
                self._known = cur.copy()
                self._rebase_since = None
                self.rebases += 1
        while self._strokes and self._strokes[0] <= t - s.window_s:
            self._strokes.popleft()
        quiet = self._last_big is None or t - self._last_big >= s.quiet_s
        return BoardActivity(
            t=t,
            writing=quiet and len(self._strokes) >= s.min_strokes,
            strokes=len(self._strokes),
            new_ink=new_ink,
            settled=settled_px / total,
            motion=motion,
            big_motion=big,
        )
