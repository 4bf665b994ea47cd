"""The built-in relay in a process of its own, so a saturated relay cannot stall the API,
the orchestrator or the agents' heartbeats.

``RelayProcess`` starts ``python -m controller.relay.worker`` (a fresh interpreter that
imports only the relay and aiortc, not the API, console and database the controller's
``__main__`` would drag in through multiprocessing's spawn), and talks to it over a
socket pair with ``controller.relay.ipc``'s frames. It hands out a ``RelayProxy`` per
lesson. When the relay process dies it is restarted, the lessons' viewers are closed, and
``on_restart`` hears which lessons lost their media so their agents are offered again.
The relay process dies with the controller: it exits when the socket closes, and the
kernel kills it (PR_SET_PDEATHSIG) if the controller is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import socket
import sys
from collections.abc import Callable

import controller
from controller.relay.exceptions import RelayUnavailable
from controller.relay.ipc import (
    Call,
    Figures,
    FrameError,
    Reply,
    Request,
    Snapshot,
    ViewerClosed,
    encode,
    read_from_relay,
)
from controller.relay.proxy import RelayProxy

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 15.0  # an answer waits for ICE gathering: seconds on a busy box
CLOSE_TIMEOUT_S = 5.0
STOP_WAIT_S = 5.0
RESTART_FIRST_S = 0.2
RESTART_MAX_S = 10.0  # a relay that dies at once, again and again, is tried this often
STABLE_S = 30.0  # up this long: the next death restarts it at once again
# It reports every second unasked; silent this long, it is hung (or so saturated that it
# delivers nothing), and is killed and restarted like a relay that died.
SILENT_S = 20.0

# Lesson ids that lost their media, and why.
OnRestart = Callable[[list[str], str], None]


class RelayProcess:
    """Supervises the relay process and routes each lesson's calls to it."""

    def __init__(self, media_addresses: tuple[str, ...] = (), on_restart: OnRestart | None = None):
        self._media_addresses = media_addresses
        self.on_restart = on_restart
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._next_id = 0
        self._lessons: dict[str, RelayProxy] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._backoff = RESTART_FIRST_S
        self._up_since = 0.0
        self._heard = 0.0  # loop time of its last message
        self._watchdog: asyncio.Task[None] | None = None
        self._killed_silent: int | None = None  # the pid killed for its silence
        self.restarts = 0  # deaths noticed and restarted after

    @property
    def pid(self) -> int | None:
        """The relay process's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def bind(self) -> None:
        """Serve from the running event loop; the relay process starts on the first call
        or lesson (a controller that relays nothing never starts one)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False

    async def start(self) -> None:
        """Start the relay process now and wait until it listens."""
        self.bind()
        await self._ensure_started()

    def _kick(self) -> None:
        """Start it soon if it is not running (from any thread)."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: stopping
            loop.call_soon_threadsafe(self._start_soon)

    def _start_soon(self) -> None:
        if self._writer is None and self._starting is None and not self._stopping:
            self._starting = asyncio.create_task(self._spawn(), name="relay-process-start")

    async def _ensure_started(self) -> None:
        if self._writer is not None:
            return
        self._start_soon()
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def _spawn(self) -> None:
        try:
            theirs, ours = socket.socketpair()
            root = str(pathlib.Path(controller.__file__).resolve().parent.parent)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
            args = [
                sys.executable,
                "-m",
                "controller.relay.worker",
                "--fd",
                str(theirs.fileno()),
                "--parent",
                str(os.getpid()),
                "--log-level",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            ]
            for address in self._media_addresses:
                args += ["--media-address", address]
            try:
                proc = await asyncio.create_subprocess_exec(
                    *args, pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, env=env
                )
            finally:
                theirs.close()  # the relay's end is its own now: its death closes the link
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            self._proc, self._writer = proc, writer
            self._up_since = self._heard = asyncio.get_running_loop().time()
            self._reader_task = asyncio.create_task(self._read(reader, proc), name="relay-read")
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._watch(), name="relay-watchdog")
            log.info("relay process %d started", proc.pid)
        finally:
            self._starting = None

    async def _read(self, reader: asyncio.StreamReader, proc: asyncio.subprocess.Process) -> None:
        try:
            while (message := await read_from_relay(reader)) is not None:
                self._heard = asyncio.get_running_loop().time()
                self._dispatch(message)
        except FrameError as err:
            log.error("relay process %d sent a broken frame (%s); restarting it", proc.pid, err)
        except (ConnectionError, OSError) as err:
            log.error("relay process %d: link lost (%s)", proc.pid, err)
        finally:
            await self._lost(proc)

    async def _watch(self) -> None:
        """Kill a relay process that has been silent for ``SILENT_S``: a time-to-dead."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await asyncio.sleep(1.0)
            proc, silent = self._proc, loop.time() - self._heard
            if proc is None or proc.returncode is not None or silent < SILENT_S:
                continue
            log.error("relay process %d silent for %.0f s; killing it", proc.pid, silent)
            self._killed_silent = proc.pid
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            self._heard = loop.time()  # one kill per silence

    def _dispatch(self, message: Reply | Figures | ViewerClosed) -> None:
        if isinstance(message, Reply):
            future = self._pending.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Figures):
            for lesson, figures in message.lessons.items():
                proxy = self._lessons.get(lesson)
                if proxy is not None:
                    proxy.update(figures)
        else:
            proxy = self._lessons.get(message.lesson)
            if proxy is not None:
                proxy.viewer_closed(message.viewer)

    async def _lost(self, proc: asyncio.subprocess.Process) -> None:
        """The link to the relay process closed: reap it, and restart it unless stopping."""
        writer, self._writer, self._proc = self._writer, None, None
        if writer is not None:
            writer.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
        except TimeoutError:  # it closed its end yet lives on: it is of no use
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RelayUnavailable("the relay process exited"))
        self._pending.clear()
        if self._stopping:
            return
        self.restarts += 1
        reason = f"relay process {proc.pid} exited with status {proc.returncode}"
        if self._killed_silent == proc.pid:
            reason = (
                f"relay process {proc.pid} answered nothing for {SILENT_S:.0f} s and was killed"
            )
        lessons = sorted(self._lessons)
        log.error("%s; restarting it (%d lessons lost their media)", reason, len(lessons))
        for proxy in list(self._lessons.values()):
            proxy.lost()
        loop = asyncio.get_running_loop()
        if loop.time() - self._up_since > STABLE_S:
            self._backoff = RESTART_FIRST_S
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, RESTART_MAX_S)
        if self._stopping:
            return
        try:
            await self._ensure_started()
        except OSError as err:
            log.error("relay process not restarted (%s); trying at the next call", err)
        if self.on_restart is not None and lessons:
            try:
                self.on_restart(lessons, reason)
            except Exception:  # the restart stands; what failed is the re-offer
                log.exception("relay restart: re-offering the agents failed")

    def open(self, lesson_id: str) -> RelayProxy:
        """The relay of a lesson (from any thread); the relay process makes it on the first
        offer, and is started now if it is not running."""
        proxy = self._lessons.get(lesson_id)
        if proxy is None or proxy.closed:
            proxy = self._lessons[lesson_id] = RelayProxy(lesson_id, self)
        if self._writer is None:
            self._kick()
        return proxy

    def forget(self, lesson_id: str) -> None:
        """A lesson's relay was closed."""
        self._lessons.pop(lesson_id, None)

    async def call(self, call: Call) -> Reply:
        """Send one call and wait for its reply; RelayUnavailable if it cannot be had."""
        if self._stopping:
            raise RelayUnavailable("the controller is stopping")
        try:
            await self._ensure_started()
        except OSError as err:
            raise RelayUnavailable(f"the relay process cannot start: {err}") from err
        writer = self._writer
        if writer is None:
            raise RelayUnavailable("the relay process is restarting; try again in a moment")
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        timeout = CLOSE_TIMEOUT_S if call.op == "close" else CALL_TIMEOUT_S
        try:
            writer.write(encode(Request(id=rid, call=call)))
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise RelayUnavailable(
                f"the relay process did not answer {call.op} within {timeout:.0f} s "
                "(saturated or stopped); try again later"
            ) from None
        finally:
            self._pending.pop(rid, None)

    async def refresh(self) -> None:
        """Fresh figures for every lesson now (rather than within a second)."""
        reply = await self.call(Snapshot())
        for lesson, figures in reply.lessons.items():
            proxy = self._lessons.get(lesson)
            if proxy is not None:
                proxy.update(figures)

    async def stop(self) -> None:
        """Stop the relay process: it closes every connection and exits; killed if not."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        proc, writer = self._proc, self._writer
        if writer is not None:
            writer.close()  # end of its requests: it closes its lessons and exits
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
            except TimeoutError:
                log.warning("relay process %d did not exit; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None
        for proxy in list(self._lessons.values()):
            proxy.lost()
        self._lessons.clear()
