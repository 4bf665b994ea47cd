"""The room's outputs for the agent: speakers, screens and the floor, told of each lesson.

The agent's lesson lifecycle tells :class:`RoomOutputs` when a lesson's media starts and
ends, and hands it every decoded remote frame. Sound goes to the playout buffers and the
mixer (with the floor's gains), pictures to the screens' tiles; the lead's floor keys
become requests to the controller, or a local change while it cannot be reached.

Everything here is called on the asyncio loop; the sound and render threads call back
through ``call_soon_threadsafe``. Every second the outputs' state is written to
``room.json`` in the state directory, for ``classroom-agent status`` and the benchmarks:
the tiles on each display, the playout figures and the CPU the room's threads used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av

from edge_agent.media.echo_cancel import EchoCanceller
from edge_agent.media.preview import BusDecoder
from edge_agent.profile import HardwareProfile
from edge_agent.room.errors import SpeakerError
from edge_agent.room.floor import FloorControl
from edge_agent.room.screens import RoomScreens
from edge_agent.room.sound import RoomSound
from edge_agent.room.speaker import validate_speakers
from edge_agent.room.thread_cpu import ThreadCpu
from edge_agent.sources import MediaSource
from protocols.messages import FloorRequest, FloorState, JoinLesson, Subscription

log = logging.getLogger(__name__)

TICK_S = 0.25
STATUS_S = 1.0
STATUS_FILE = "room.json"
LOCAL_FPS = 15.0

FloorSender = Callable[[FloorRequest], Awaitable[FloorState]]


class RoomOutputs:
    """What the people in the room hear and see (see the module docstring)."""

    def __init__(
        self,
        profile: HardwareProfile,
        classroom_id: str,
        state_dir: pathlib.Path,
        alerts: dict[str, str],
        *,
        echo: EchoCanceller | None = None,
        send_floor: FloorSender | None = None,
        pulse_server: str | None = None,
    ) -> None:
        self.profile = profile
        self.classroom_id = classroom_id
        self.state_dir = state_dir
        self.alerts = alerts
        self.echo = echo
        self._send_floor = send_floor
        self._pulse_server = pulse_server or os.environ.get("PULSE_SERVER") or None
        self.floor = FloorControl(classroom_id)
        self.sound: RoomSound | None = None
        self.screens: RoomScreens | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._join: JoinLesson | None = None
        self._sources: dict[str, MediaSource] = {}
        self._local: dict[str, BusDecoder] = {}
        self._task: asyncio.Task[None] | None = None
        self._cpu = ThreadCpu()
        self._status_at = 0.0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Check and open the speakers and the screens; a failure is an alert, not fatal."""
        self._loop = asyncio.get_running_loop()
        spec = self.profile.speakers
        if spec is not None:
            try:
                await asyncio.to_thread(validate_speakers, spec, pulse_server=self._pulse_server)
            except SpeakerError as err:
                log.error("%s", err)
                self.alerts["speakers"] = str(err)
            self.sound = RoomSound(
                spec,
                self.echo,
                on_alert=self._threadsafe(self._alert_from("speakers")),
                pulse_server=self._pulse_server,
            )
            self.sound.start()
        screens = self.profile.screens
        if screens:
            room = RoomScreens(
                screens,
                self.classroom_id,
                on_key=self._threadsafe(self._on_key),
                on_alert=self._threadsafe(self._alert_from("screens")),
            )
            try:
                await asyncio.to_thread(room.start)
            except RuntimeError as err:
                log.warning("%s", err)
                self.alerts["screens"] = str(err)
            else:
                self.screens = room
        self._task = asyncio.create_task(self._tick(), name="room-outputs")

    async def stop(self) -> None:
        """Close the speakers and the screens."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._stop_local()
        if self.sound is not None:
            await asyncio.to_thread(self.sound.stop)
        if self.screens is not None:
            await asyncio.to_thread(self.screens.stop)

    # --- lessons -----------------------------------------------------------------------

    def lesson_started(self, join: JoinLesson, sources: dict[str, MediaSource]) -> None:
        """A lesson's media begins (or its terms changed): layouts, floor and gains."""
        self._join, self._sources = join, sources
        self.floor.reset(join)
        local_roles = {d.name: d.role for d in self.profile.devices}
        if self.screens is not None:
            self.screens.lesson(join, local_roles)
            self.screens.set_floor(self.floor.state)
        self._apply_gains()
        self._feed_local()

    def lesson_ended(self, lesson_id: str) -> None:
        """Lesson ``lesson_id`` is over: idle screens, no remote sound (unless another
        lesson has already taken the room over, as at a back-to-back handover)."""
        if self._join is None or self._join.lesson_id != lesson_id:
            return
        self._join = None
        self._sources = {}
        self.floor.reset(None)
        self._stop_local()
        if self.screens is not None:
            self.screens.lesson(None, {})
        if self.sound is not None:
            self.sound.clear()

    def on_decoded(self, sub: Subscription, frame: av.VideoFrame | av.AudioFrame) -> None:
        """A decoded remote frame: sound to the playout buffers, pictures to the tiles."""
        if isinstance(frame, av.AudioFrame):
            if self.sound is not None:
                self.sound.push(sub.source_classroom, frame)
            return
        if self.screens is not None:
            self.screens.show(f"{sub.source_classroom}-{sub.track}", frame)

    def apply_floor(self, state: FloorState) -> bool:
        """A floor state from the controller; False if older than the one applied."""
        if not self.floor.apply(state):
            return False
        log.info(
            "lesson %s floor %d: %s has the floor%s (by %s)",
            state.lesson_id,
            state.seq,
            state.speaking or "nobody",
            f", muted {', '.join(state.muted)}" if state.muted else "",
            state.by or "?",
        )
        if self.screens is not None:
            self.screens.set_floor(self.floor.state)
        self._apply_gains()
        return True

    def press(self, name: str) -> asyncio.Task[None] | None:
        """A key pressed in the room (a window's keyboard, a clicker): maybe a floor change."""
        request = self.floor.on_key(name, self.profile.floor_keys)
        if request is None:
            return None
        task = asyncio.create_task(self._request_floor(request), name="floor-key")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _request_floor(self, request: FloorRequest) -> None:
        state: FloorState | None = None
        if self._send_floor is not None:
            try:
                state = await self._send_floor(request)
            except (ConnectionError, TimeoutError, ValueError) as err:
                log.warning("floor change by key not confirmed by the controller (%s)", err)
        if state is None:  # offline: the room still follows its teacher's clicker
            state = self.floor.local_change(request)
        self.apply_floor(state)

    # --- inside ------------------------------------------------------------------------

    def _apply_gains(self) -> None:
        if self.sound is None:
            return
        duck = self.profile.speakers.duck_db if self.profile.speakers else None
        self.sound.set_gains(self.floor.gains_db(duck))

    def sources_changed(self) -> None:
        """The agent's running sources changed: follow them with the local tiles."""
        if self._join is not None:
            self._feed_local()

    def _feed_local(self) -> None:
        """Decode the local devices a display shows (the lead's courseware on its panel)."""
        wanted = self.screens.wanted() if self.screens is not None else set()
        names = {k.removeprefix("local:") for k in wanted if k.startswith("local:")}
        for name in list(self._local):
            source = self._sources.get(name)
            if name not in names or source is None or source.bus is not self._local[name].bus:
                self._local.pop(name).stop()
        screens = self.screens
        for name in names - set(self._local):
            source = self._sources.get(name)
            if screens is None or source is None or source.kind != "video":
                continue
            decoder = BusDecoder(source.bus, _shower(screens, f"local:{name}"), LOCAL_FPS)
            decoder.start()
            self._local[name] = decoder

    def _stop_local(self) -> None:
        for decoder in self._local.values():
            decoder.stop()
        self._local.clear()

    def _on_key(self, name: str) -> None:
        self.press(name)

    def _alert_from(self, what: str) -> Callable[[str | None], None]:
        def alert(message: str | None) -> None:
            if message is None:
                self.alerts.pop(what, None)
            else:
                self.alerts[what] = message

        return alert

    def _threadsafe(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(arg: Any) -> None:
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, arg)

        return call

    async def _tick(self) -> None:
        """Mark the loudest room on the lead's screens; write ``room.json`` every second."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                if self.sound is not None and self.screens is not None and self.floor.is_lead:
                    self.screens.set_loudest(self.sound.loudest())
                now = time.monotonic()
                if now - self._status_at >= STATUS_S:
                    self._status_at = now
                    await asyncio.to_thread(self._write_status)
            except Exception:
                log.exception("room outputs tick failed; carrying on")

    def status(self) -> dict[str, Any]:
        """The outputs' state: tiles, playout figures, floor and the threads' CPU."""
        threads: dict[str, int] = {}
        pulse: set[int] = set()
        if self.sound is not None:
            if self.sound.native_id is not None:
                threads["sound"] = self.sound.native_id
            if self.sound.watcher_id is not None:
                threads["sound-watch"] = self.sound.watcher_id
            pulse = self.sound.device_threads()
        if self.screens is not None and self.screens.native_id is not None:
            threads["screens"] = self.screens.native_id
        for name, decoder in self._local.items():
            if decoder.native_id is not None:
                threads[f"local:{name}"] = decoder.native_id
        doc: dict[str, Any] = {
            "at": time.time(),
            "lesson_id": self._join.lesson_id if self._join else None,
            "floor": self.floor.state.model_dump() if self.floor.state else None,
            "sound": self.sound.stats() if self.sound is not None else None,
            "screens": self.screens.stats() if self.screens is not None else None,
            "cpu_s": self._cpu.seconds(threads, pulse),
            "displays": {},
        }
        if self.screens is not None:
            sizes = self.screens.source_sizes()
            for display in self.screens.displays:
                doc["displays"][display.name] = {
                    "display": display.display,
                    "x": display.x,
                    "y": display.y,
                    "width": display.width,
                    "height": display.height,
                    "tiles": [
                        {
                            "key": t.source_key,
                            "x": t.rect.x,
                            "y": t.rect.y,
                            "w": t.rect.w,
                            "h": t.rect.h,
                            "large": t.large,
                            "classroom_id": t.classroom_id,
                            "src_w": sizes.get(t.source_key, t.source_size)[0],
                            "src_h": sizes.get(t.source_key, t.source_size)[1],
                        }
                        for t in self.screens.tiles(display.name)
                    ],
                }
        return doc

    def _write_status(self) -> None:
        path = self.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), default=str))
        tmp.replace(path)


def _shower(screens: RoomScreens, key: str) -> Callable[[av.VideoFrame], None]:
    def show(frame: av.VideoFrame) -> None:
        screens.show(key, frame)

    return show
