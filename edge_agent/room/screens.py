"""The room's screens (课堂显示): the panel and the mid-screen, drawn by one thread.

One SDL window per display, all on the profile's X display (a second monitor of the same
desktop is a window placed at its x, y). The asyncio loop hands over the lesson, the
floor and decoded frames; the render thread alone touches SDL, redraws a display at most
at its fps and only when a tile's feed has a new frame or something else changed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import av

from edge_agent.profile import Display
from edge_agent.room.layouts import Tile, layout_for
from protocols.messages import FloorState, JoinLesson

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What the render thread draws from, copied under the lock."""

    generation: int
    tiles: dict[str, list[Tile]]
    frames: dict[str, tuple[av.VideoFrame, float]]
    loudest: str | None
    in_lesson: bool
    room_name: str


class RoomScreens:
    """Shows the right pictures on the room's displays.

    ``on_key`` and ``on_alert`` are called from the render thread: hand them over to the
    asyncio loop with ``loop.call_soon_threadsafe``.
    """

    def __init__(
        self,
        displays: list[Display],
        classroom_id: str,
        on_key: Callable[[str], None] | None = None,
        on_alert: Callable[[str | None], None] | None = None,
    ) -> None:
        if not displays:
            raise ValueError("RoomScreens needs at least one display; the profile declares none")
        self.displays = list(displays)
        self.classroom_id = classroom_id
        self.on_key = on_key
        self.on_alert = on_alert
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        # Shared with the render thread under _lock.
        self._frames: dict[str, tuple[av.VideoFrame, float]] = {}
        self._join: JoinLesson | None = None
        self._local: dict[str, str] = {}
        self._floor: FloorState | None = None
        self._loudest: str | None = None
        self._tiles: dict[str, list[Tile]] = {d.name: [] for d in self.displays}
        self._shown: set[str] = set()  # the source keys the current tiles show
        self._generation = 0
        self._stats: dict[str, object] = {}

    # --- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Open the windows; raises ``RuntimeError`` naming the X display if it cannot."""
        if self._thread is not None:
            raise RuntimeError("RoomScreens already started")
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="room-screens", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            self._error = (
                f"the room screens on X display {self.displays[0].display} did not open within "
                f"{timeout:.0f} s; check the X server answers (xdpyinfo -display "
                f"{self.displays[0].display})"
            )
        if self._error is not None:
            self.stop()
            self._alert(self._error)
            raise RuntimeError(self._error)

    def stop(self) -> None:
        """Close the windows and end the render thread."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # Wait for the windows to close: an X server that goes away under open windows
            # ends the process (Xlib's I/O error handler), so never leave them behind.
            thread.join(timeout=30)
            if thread.is_alive():
                log.warning("room screens: render thread did not stop within 30 s")

    # --- what to show (from the asyncio loop) --------------------------------------

    @property
    def native_id(self) -> int | None:
        """The OS id of this object's thread (for CPU accounting), while it runs."""
        thread = self._thread
        return thread.native_id if thread is not None else None

    def lesson(self, join: JoinLesson | None, local_devices: Mapping[str, str]) -> None:
        """A lesson starts (or ends: ``None``); ``local_devices`` maps device name to role."""
        with self._lock:
            self._join = join
            self._local = dict(local_devices)
            self._floor = join.floor if join is not None else None
            self._relayout()

    def set_floor(self, floor: FloorState | None) -> None:
        """Who has the floor now (the large tile on the lead's mid-screen)."""
        with self._lock:
            if floor is not None and (
                self._join is None or floor.lesson_id != self._join.lesson_id
            ):
                log.debug("room screens: floor for lesson %s ignored (not ours)", floor.lesson_id)
                return
            self._floor = floor
            self._relayout()

    def set_loudest(self, classroom_id: str | None) -> None:
        """Mark the room heard loudest (an amber border and band on its tile)."""
        with self._lock:
            self._loudest = classroom_id
        self._wake.set()

    def show(self, source_key: str, frame: av.VideoFrame) -> None:
        """Offer a decoded frame for ``"<classroom>-<track>"`` or ``"local:<device>"``.

        A feed no tile shows (a track received for the recording only) is not kept and
        does not wake the render thread."""
        with self._lock:
            if source_key not in self._shown:
                return
            self._frames[source_key] = (frame, time.monotonic())
        self._wake.set()

    def tiles(self, display_name: str) -> list[Tile]:
        """The current layout of a display (where each tile is on it)."""
        with self._lock:
            return list(self._tiles[display_name])

    def wanted(self) -> set[str]:
        """The source keys the current layouts show (local ones need decoding)."""
        with self._lock:
            return set(self._shown)

    def source_sizes(self) -> dict[str, tuple[int, int]]:
        """The (width, height) of the newest frame of each source shown."""
        with self._lock:
            return {k: (f.width, f.height) for k, (f, _) in self._frames.items()}

    def stats(self) -> dict[str, object]:
        """Frames drawn per display, frames shown and slates entered per source, CPU."""
        with self._lock:
            return dict(self._stats)

    def _relayout(self) -> None:
        """Recompute every display's tiles (called with the lock held)."""
        join = self._join
        if join is not None and self._floor is not None:
            join = join.model_copy(update={"floor": self._floor})
        for d in self.displays:
            self._tiles[d.name] = layout_for(d, join, self._local)
        self._shown = {t.source_key for tiles in self._tiles.values() for t in tiles}
        self._frames = {k: v for k, v in self._frames.items() if k in self._shown}
        self._generation += 1
        self._wake.set()

    def _alert(self, message: str | None) -> None:
        if self.on_alert is not None:
            try:
                self.on_alert(message)
            except Exception:
                log.exception("room screens: on_alert callback failed")

    def _run(self) -> None:
        from edge_agent.room.render import RenderLoop  # pygame loads on the render thread

        loop = RenderLoop(self)
        try:
            loop.open()
        except RuntimeError as err:  # open() names the display and what to check
            self._error = str(err)
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        self._alert(loop.warning)
        try:
            loop.run()
        except Exception as err:
            log.exception("room screens: render thread failed")
            self._alert(f"the room screens stopped: {err}; restart the agent")
        finally:
            loop.close()

    # --- for the render loop -------------------------------------------------------

    def _snapshot(self, seen: int) -> Snapshot:
        """The state to draw; tiles are copied only when newer than generation ``seen``."""
        with self._lock:
            rooms = {r.classroom_id: r for r in self._join.rooms} if self._join else {}
            own = rooms.get(self.classroom_id)
            name = " ".join(p for p in (own.school, own.name) if p) if own else ""
            return Snapshot(
                generation=self._generation,
                tiles={k: list(v) for k, v in self._tiles.items()}
                if seen != self._generation
                else {},
                frames=dict(self._frames),
                loudest=self._loudest,
                in_lesson=self._join is not None,
                room_name=name or self.classroom_id,
            )

    def _publish(self, stats: dict[str, object]) -> None:
        with self._lock:
            self._stats = stats

    def _key(self, name: str) -> None:
        if self.on_key is not None:
            try:
                self.on_key(name)
            except Exception:
                log.exception("room screens: on_key callback failed for %r", name)
