"""What each service uses (CPU, memory, limits from its group) and its row in the kernel's service table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil

from flightos.kernel.records import ServiceRecord
from flightos.kernel.supervision.containment import Containment


class ResourceSampler:
    """Samples CPU % and memory of each service's whole tree (its group, children included).

    With a containment backend the figures come from the service's cgroup (cpuacct/cpu.stat, memory)
    or process group; without one, psutil measures the service process alone. Each sample also asks
    the backend whether the service broke a limit, and reports it through ``on_breach``.
    """

    def __init__(
        self, containment: Containment | None = None, on_breach: Callable[[ServiceRecord, str], None] | None = None
    ) -> None:
        self.containment = containment
        self.on_breach = on_breach
        self._procs: dict[int, psutil.Process] = {}
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (monotonic time, cumulative CPU s) last seen

    def sample(self, rec: ServiceRecord) -> None:
        """Update ``cpu_percent`` and ``rss_bytes`` of a record (0 when it has no process)."""
        if rec.pid is None:
            rec.cpu_percent, rec.rss_bytes = 0.0, 0
            return
        if self.containment is not None:
            reason = self.containment.poll(rec.pid)
            if reason is not None and self.on_breach is not None:
                self.on_breach(rec, reason)
            use = self.containment.usage(rec.pid)
            if use is not None:
                rec.cpu_percent = self._percent(rec.pid, use.cpu_s)
                rec.rss_bytes = use.memory_bytes
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

    def _percent(self, pid: int, cpu_s: float) -> float:
        """Percent of one CPU since the previous sample of this pid (0 on the first)."""
        now = time.monotonic()
        last = self._cpu.get(pid)
        self._cpu[pid] = (now, cpu_s)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, 100.0 * (cpu_s - last[1]) / (now - last[0]))

    def forget_dead(self, live: set[int]) -> None:
        """Drop what is kept about pids no longer running."""
        for pid in list(self._procs):
            if pid not in live:
                del self._procs[pid]
        for pid in list(self._cpu):
            if pid not in live:
                del self._cpu[pid]


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
        "memory_limit_mb": rec.cfg.memory_mb,
        "tasks_limit": rec.cfg.tasks,
        "queued": len(rec.queue),
        "inflight": len(rec.inflight),
        "reason": rec.reason,
        "stats": rec.heartbeat,
    }
