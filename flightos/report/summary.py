"""The figures engineers look at first, as one JSON-serialisable dict. Times ``*_s`` are since the start."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flightos.report.model import SEVERITIES, Run
from flightos.report.timeline import mode_changes, mode_intervals, unhealthy_episodes


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


def summarize(run: Run) -> dict[str, Any]:
    """Duration, restarts, migrations, mode time, thermal margin, unhealthy cores, failures, severities."""
    m = run.meta
    return {
        "run_id": run.run_id,
        "target": m.get("target"),
        "board": m.get("board"),
        "backend": m.get("backend"),
        "scenario": m.get("scenario"),
        "flightos_version": m.get("flightos_version"),
        "started_utc": run.start,
        "ended_utc": run.ended,
        "complete": run.ended is not None,
        "duration_s": _r(run.duration),
        "cores": run.cores,
        "services": run.services,
        "restarts": _restarts(run),
        "migrations": _migrations(run),
        "mode_time_s": _mode_time(run),
        "mode_changes": _mode_changes(run),
        "thermal": _thermal(run),
        "power": _power(run),
        "cores_left_healthy": [
            {
                "core": ep.core,
                "at_s": _r(run.rel(ep.left_at)),
                "states": list(ep.states),
                "reason": ep.reason,
                "healthy_again_at_s": _r(run.rel(ep.back_at)) if ep.back_at is not None else None,
            }
            for core in run.cores
            for ep in unhealthy_episodes(run, core)
        ],
        "failed_services": _failed(run),
        "events_by_severity": _severities(run),
        "events": len(run.events),
        "samples": len(run.samples),
        "skipped_lines": run.skipped_lines,
        "missing_files": list(run.missing),
        "problems": list(run.problems),
    }


def _mode_changes(run: Run) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    current, changes = mode_changes(run)
    for c in changes:
        if c.value != current:
            out.append({"at_s": _r(run.rel(c.t)), "old": current, "new": c.value, "reason": c.reason})
            current = c.value
    return out


def _restarts(run: Run) -> dict[str, int]:
    """SERVICE_RESTART_SCHEDULED per service; the telemetry's counter if higher (events were lost)."""
    counts: Counter[str] = Counter({name: 0 for name in run.services})
    for e in run.events:
        if e.name == "SERVICE_RESTART_SCHEDULED" and isinstance(e.data.get("service"), str):
            counts[e.data["service"]] += 1
    for sample in run.samples:
        for s in sample.services:
            counts[s.name] = max(counts[s.name], s.restarts)
    return dict(counts)


def _migrations(run: Run) -> dict[str, Any]:
    moves = [e for e in run.events if e.name == "SERVICE_MIGRATED"]
    restarted = sum(1 for e in moves if e.data.get("restarted") is True)
    return {
        "count": len(moves),
        "with_restart": restarted,
        "without_restart": len(moves) - restarted,
        "list": [
            {
                "at_s": _r(run.rel(e.t)),
                "service": e.data.get("service"),
                "from_cores": e.data.get("from_cores"),
                "to_cores": e.data.get("to_cores"),
                "restarted": e.data.get("restarted") is True,
            }
            for e in moves
        ],
    }


def _mode_time(run: Run) -> dict[str, float]:
    out: dict[str, float] = {}
    for iv in mode_intervals(run):
        out[iv.value] = out.get(iv.value, 0.0) + iv.length
    return {k: round(v, 3) for k, v in out.items()}


def _thermal(run: Run) -> dict[str, Any]:
    """Hottest junction temperature, and the smallest margin to the trip point (trip - junction)."""
    temps = [s for s in run.samples if s.junction_c is not None]
    hottest = max(temps, key=lambda s: s.junction_c or 0.0, default=None)
    margins = [(s.trip_c - s.junction_c, s) for s in temps if s.trip_c is not None and s.junction_c is not None]
    tightest = min(margins, key=lambda m: m[0], default=None)
    return {
        "max_junction_c": hottest.junction_c if hottest else None,
        "max_junction_at_s": _r(run.rel(hottest.t)) if hottest else None,
        "trip_c": tightest[1].trip_c if tightest else next((s.trip_c for s in run.samples if s.trip_c), None),
        "min_margin_c": _r(tightest[0], 2) if tightest else None,
        "min_margin_at_s": _r(run.rel(tightest[1].t)) if tightest else None,
    }


def _power(run: Run) -> dict[str, Any]:
    powered = [s for s in run.samples if s.power_w is not None]
    peak = max(powered, key=lambda s: s.power_w or 0.0, default=None)
    over = sum(1 for s in powered if s.budget_w is not None and (s.power_w or 0.0) > s.budget_w)
    return {
        "max_w": peak.power_w if peak else None,
        "max_at_s": _r(run.rel(peak.t)) if peak else None,
        "budget_w": next((s.budget_w for s in reversed(run.samples) if s.budget_w is not None), None),
        "samples_over_budget": over,
    }


def _failed(run: Run) -> list[dict[str, Any]]:
    """SERVICE_FAILED events, then services the telemetry shows FAILED without one."""
    out: dict[str, dict[str, Any]] = {}
    for e in run.events:
        svc = e.data.get("service")
        if e.name == "SERVICE_FAILED" and isinstance(svc, str) and svc not in out:
            out[svc] = {"service": svc, "at_s": _r(run.rel(e.t)), "message": e.message}
    for sample in run.samples:
        for s in sample.services:
            if s.state == "FAILED" and s.name not in out:
                out[s.name] = {
                    "service": s.name,
                    "at_s": _r(run.rel(sample.t)),
                    "message": "FAILED in telemetry (no SERVICE_FAILED event recorded)",
                }
    return list(out.values())


def _severities(run: Run) -> dict[str, int]:
    counts = Counter(e.severity for e in run.events)
    return {**{s: counts.get(s, 0) for s in SEVERITIES}, **{k: v for k, v in counts.items() if k not in SEVERITIES}}
