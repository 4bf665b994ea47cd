"""A private PulseAudio server: Debian's ``pulseaudio`` in a runtime directory of its own.

It stands in for a classroom PC's sound server. It runs in the foreground as whoever
starts it (root in CI, with ``--system=false``), loads only the native protocol and the
null sinks a test asks for, and never touches a user's or the system's server. Clients
reach it through ``server`` (``unix:<dir>/pulse/native``): pass it to pasimple/pulsectl,
or put ``env`` in a child process's environment.

A null sink is a pretend loudspeaker; its ``<sink>.monitor`` source hears exactly what was
played into it, so it is also a pretend microphone (play a tone into the sink, capture
the monitor). Debian 12 packages: ``pulseaudio pulseaudio-utils`` (scripts/bootstrap).

The tests' fixtures (tests/peers/pulse.py), the demo and bench-room all use this one.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import numpy.typing as npt
import pasimple

from edge_agent.room.pulse import CONNECTING

RATE = 48000


def available() -> bool:
    """Whether Debian's pulseaudio and its command-line tools are installed."""
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "parec", "pacat"))


def why_unavailable() -> str:
    """A skip reason that says what to install."""
    return (
        "PulseAudio not installed; run `apt-get install --no-install-recommends pulseaudio "
        "pulseaudio-utils libpulse0` (scripts/bootstrap)"
    )


def _die_with_parent() -> None:
    """In the child before exec: the server gets SIGTERM if the test process dies first."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class PulseServer:
    """One PulseAudio server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, directory: pathlib.Path | None = None) -> None:
        self._own_dir = directory is None
        # A short path: the socket path must fit in sun_path (108 bytes).
        self.directory = directory or pathlib.Path(tempfile.mkdtemp(prefix="pa-"))
        self.server = f"unix:{self.directory / 'pulse' / 'native'}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._sinks: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        """The environment for a child process that should use this server."""
        return {
            **os.environ,
            "PULSE_SERVER": self.server,
            "XDG_RUNTIME_DIR": str(self.directory),
            "HOME": str(self.directory),
        }

    def start(self, sinks: tuple[str, ...] = (), timeout: float = 10.0) -> None:
        """Start the server with ``sinks`` as null sinks; returns once it answers."""
        if not available():
            raise RuntimeError(why_unavailable())
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--system=false",
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=stderr",
            "-L",
            "module-native-protocol-unix",
        ]
        self._proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while self._pactl("info", check=False).returncode != 0:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pulseaudio did not start in {self.directory}")
            time.sleep(0.05)
        for name in sinks:
            self.add_sink(name)

    def stop(self) -> None:
        """Stop the server."""
        proc, self._proc = self._proc, None
        self._sinks.clear()
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def cleanup(self) -> None:
        """Stop, and remove the directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def _pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )

    def add_sink(self, name: str) -> int:
        """Load a 48 kHz stereo null sink called ``name``; returns its module index."""
        done = self._pactl(
            "load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}", "channels=2"
        )
        self._sinks[name] = int(done.stdout.strip())
        return self._sinks[name]

    def remove_sink(self, name: str) -> None:
        """Unload the null sink ``name`` (its streams are killed, as when unplugged)."""
        index = self._sinks.pop(name)
        self._pactl("unload-module", str(index))

    def loaded(self, name: str) -> bool:
        """Whether this object loaded the null sink ``name`` and it is still there."""
        return name in self._sinks

    def sinks(self) -> list[str]:
        """The names of the server's sinks."""
        out = self._pactl("list", "short", "sinks").stdout
        return [line.split("\t")[1] for line in out.splitlines() if "\t" in line]

    def record(self, source: str, seconds: float) -> npt.NDArray[np.int16]:
        """Record ``seconds`` of 48 kHz mono s16 from ``source`` (e.g. ``room_a.monitor``)."""
        with self.recorder(source) as proc:
            assert proc.stdout is not None
            data = proc.stdout.read(int(seconds * RATE) * 2)
        return np.frombuffer(data, dtype=np.int16).copy()

    def recorder(self, source: str) -> subprocess.Popen[bytes]:
        """A running ``parec`` on ``source``: read 48 kHz mono s16 from its stdout."""
        # --raw and the sink's rate, or the monitor reads back silence (ARCHITECTURE §6).
        return subprocess.Popen(
            [
                "parec",
                "--raw",
                "-d",
                source,
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=20",
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # "Broken pipe" when the reader closes is expected
            preexec_fn=_die_with_parent,
        )

    def player(self, sink: str, pcm: npt.NDArray[np.int16]) -> Player:
        """Start playing mono 48 kHz ``pcm`` into ``sink`` (paced by the sink, like a
        real program; ``pacat`` fed a whole file at once comes out garbled on a null sink)."""
        player = Player(self.server, sink, pcm)
        player.start()
        return player


class Player:
    """Plays samples into a sink from a thread, 10 ms per blocking write (pasimple)."""

    def __init__(self, server: str, sink: str, pcm: npt.NDArray[np.int16]) -> None:
        with CONNECTING:  # libpulse set-up is not thread-safe
            self._stream = self._open(server, sink)
        self._pcm = pcm
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _open(server: str, sink: str) -> pasimple.PaSimple:
        return pasimple.PaSimple(
            pasimple.PA_STREAM_PLAYBACK,
            pasimple.PA_SAMPLE_S16LE,
            1,
            RATE,
            "tests",
            server_name=server,
            device_name=sink,
            tlength=RATE // 25 * 2,
            minreq=RATE // 100 * 2,
        )

    def start(self) -> None:
        """Start playing."""
        self._thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, self._pcm.size, 480):
                if self._stop.is_set():
                    return
                self._stream.write(self._pcm[start : start + 480].astype("<i2").tobytes())
        except pasimple.PaSimpleError:
            return  # the sink went away under the test: that is the test's business

    def stop(self) -> None:
        """Stop playing and close the stream."""
        self._stop.set()
        self._thread.join(10)
        with CONNECTING:
            self._stream.close()


def tone(freq: float, seconds: float, dbfs: float) -> npt.NDArray[np.int16]:
    """A sine at ``freq`` Hz whose peak is ``dbfs`` (RMS is 3 dB lower), 48 kHz mono."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 32767 * 10 ** (dbfs / 20)).astype(np.int16)


def after_onset(
    pcm: npt.NDArray[np.int16], seconds: float, skip_s: float = 0.1
) -> npt.NDArray[np.int16]:
    """``seconds`` of ``pcm`` from ``skip_s`` after the first sample above -50 dBFS."""
    loud = np.flatnonzero(np.abs(pcm) > 100)
    if loud.size == 0:
        return np.zeros(0, dtype=np.int16)
    start = int(loud[0] + skip_s * RATE)
    return pcm[start : start + int(seconds * RATE)]


def tone_level(pcm: npt.NDArray[np.int16], freq: float) -> float:
    """The level of ``freq`` in ``pcm`` as the peak dBFS of a sine (Goertzel-like DFT bin)."""
    if pcm.size == 0:
        return -120.0
    t = np.arange(pcm.size) / RATE
    x = pcm.astype(np.float64) / 32767
    amp = 2 * abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) / pcm.size
    return float(20 * np.log10(max(amp, 1e-6)))


def typical_tone_level(pcm: npt.NDArray[np.int16], freq: float, block_s: float = 0.02) -> float:
    """The median over ``block_s`` blocks of ``freq``'s level, dBFS.

    A playout buffer that adapts cuts or repeats a few milliseconds now and then, and a
    stalled feeder leaves a gap: either breaks a tone's phase, and one DFT over a whole
    second then reads decibels low although every block is at the right level. The
    median over short blocks reads the level the listener hears most of the time."""
    size = int(block_s * RATE)
    if pcm.size < size:
        return -120.0
    return float(
        np.median(
            [tone_level(pcm[i : i + size], freq) for i in range(0, pcm.size - size + 1, size)]
        )
    )
