"""Health figures for heartbeats, from psutil."""

from __future__ import annotations

import pathlib

import psutil


def temperature_c() -> float | None:
    """The hottest sensor reading, or None where the box exposes none (VMs)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        sensors = read()
    except (OSError, RuntimeError):
        return None
    values = [t.current for entries in sensors.values() for t in entries if t.current]
    return max(values) if values else None


def snapshot(state_dir: pathlib.Path) -> dict[str, float | int | None]:
    """CPU, memory, disk and temperature right now."""
    disk = psutil.disk_usage(str(state_dir if state_dir.exists() else pathlib.Path("/")))
    return {
        "cpu_pct": psutil.cpu_percent(interval=None),
        "mem_pct": psutil.virtual_memory().percent,
        "disk_free_bytes": disk.free,
        "disk_pct": disk.percent,
        "temperature_c": temperature_c(),
        **net_counters(),
    }


def net_counters() -> dict[str, int | None]:
    """Bytes sent and received by all interfaces since boot."""
    try:
        io = psutil.net_io_counters()
    except (OSError, RuntimeError):
        return {"net_bytes_sent": None, "net_bytes_recv": None}
    return {"net_bytes_sent": int(io.bytes_sent), "net_bytes_recv": int(io.bytes_recv)}
