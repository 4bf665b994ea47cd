"""What a lesson delivered and recorded, from the lesson document the controller returns.

Shared by the demo, the end-to-end tests and the benchmarks that run whole lessons.
"""

from __future__ import annotations

from typing import Any


def summarise(lesson: dict[str, Any], storage_checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Frames, latency and recordings from the lesson document the controller returns."""
    reports: dict[str, list[dict[str, Any]]] = lesson["reports"]
    sent = {
        f"{cid}/{t['track']}": t
        for cid, tracks in reports.items()
        for t in tracks
        if t["direction"] == "send"
    }
    frames_sent: dict[str, int] = {}
    frames_received: dict[str, dict[str, int]] = {}
    delivery: dict[str, float] = {}
    latency: dict[str, dict[str, float | None]] = {}
    for cid, tracks in reports.items():
        for t in tracks:
            if t["direction"] != "recv":
                continue
            key = f"{t['source_classroom']}/{t['track']}"
            src = sent.get(key)
            if src is None:
                continue
            if t["kind"] == "video" and src["first_counter"] is not None:
                lo, hi = src["first_counter"], src["last_counter"]
                got = sum(max(0, min(b, hi) - max(a, lo) + 1) for a, b in t["counter_ranges"])
                expected = hi - lo + 1
            else:
                got, expected = t["frames"], src["frames"]
            frames_received.setdefault(key, {})[cid] = got
            delivery[f"{key}->{cid}"] = round(got / expected, 4) if expected else 0.0
            if t["latency_p50_ms"] is not None:
                latency[f"{key}->{cid}"] = {
                    "p50": round(t["latency_p50_ms"], 1),
                    "p95": round(t["latency_p95_ms"], 1),
                }
    for key, t in sent.items():
        frames_sent[key] = (
            t["last_counter"] - t["first_counter"] + 1
            if t["kind"] == "video" and t["first_counter"] is not None
            else t["frames"]
        )
    main = latency.get(f"{lesson['lead']}/teacher->{lesson['receivers'][0]}", {})
    return {
        "lesson_id": lesson["id"],
        "state": lesson["state"],
        "frames_sent": frames_sent,
        "frames_received": frames_received,
        "delivery_ratio": delivery,
        "latency_ms": {"p50": main.get("p50"), "p95": main.get("p95"), "per_track": latency},
        "recordings": [c["path"] for c in storage_checks],
        "recording_checks": storage_checks,
    }
