"""The kernel's own telemetry: the service table, the cores, and the bus counters."""

from __future__ import annotations

from typing import Any

import psutil

from flightos.kernel.records import ServiceRecord


class ResourceSampler:
    """Samples CPU % and RSS of service processes with psutil, keeping one Process per pid."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, rec: ServiceRecord) -> None:
        """Update ``cpu_percent`` and ``rss_bytes`` of a record (0 when it has no process)."""
        if rec.pid is None:
            rec.cpu_percent, rec.rss_bytes = 0.0, 0
            return
        proc = self._procs.get(rec.pid)
        try:
            if proc is None:
                proc = self._procs[rec.pid] = psutil.Process(rec.pid)
                proc.cpu_percent(None)
            rec.cpu_percent = proc.cpu_percent(None)
            rec.rss_bytes = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(rec.pid, None)
            rec.cpu_percent, rec.rss_bytes = 0.0, 0

    def forget_dead(self, live: set[int]) -> None:
        """Drop Process objects of pids no longer running."""
        for pid in list(self._procs):
            if pid not in live:
                del self._procs[pid]


def service_row(rec: ServiceRecord, now: float) -> dict[str, Any]:
    """One service as the status table and ``tm.kernel.services`` show it."""
    hb_age = (now - rec.last_heartbeat) * 1000 if rec.state.value == "READY" else None
    return {
        "name": rec.name,
        "state": rec.state.value,
        "pid": rec.pid,
        "incarnation": rec.incarnation,
        "criticality": rec.cfg.criticality,
        "restart": rec.cfg.restart,
        "cores": rec.cores,
        "host_cpus": rec.host_cpus,
        "restarts": rec.restarts,
        "last_exit": rec.last_exit,
        "heartbeat_age_ms": round(hb_age, 1) if hb_age is not None else None,
        "heartbeat_limit_ms": round(rec.hang_timeout * 1000, 1),
        "cpu_percent": round(rec.cpu_percent, 2),
        "rss_mb": round(rec.rss_bytes / 1e6, 1),
        "queued": len(rec.queue),
        "inflight": len(rec.inflight),
        "reason": rec.reason,
        "stats": rec.heartbeat,
    }
