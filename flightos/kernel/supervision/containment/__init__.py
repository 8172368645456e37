"""Containment: each service in a group of its own, with memory and task limits, killed as a whole.

Backends, best first: cgroup v2 under the kernel's delegated group, cgroup v1 (memory, pids, freezer,
cpuacct, cpuset), and a fallback of a session per service with rlimits and polled limits. A janitor
process kills every service tree when the kernel dies, however it dies.
"""

from __future__ import annotations

import os

import structlog

from flightos.kernel.supervision.containment.base import Containment, Usage
from flightos.kernel.supervision.containment.cgroups import CgroupError, CgroupV1, CgroupV2
from flightos.kernel.supervision.containment.procgroup import ProcessGroups

__all__ = ["ENV_MODE", "MODES", "Containment", "Usage", "detect"]

ENV_MODE = "FLIGHTOS_CONTAINMENT"
"""Environment variable that picks a backend instead of the best available (for tests and diagnosis)."""
MODES = ("auto", "cgroup-v2", "cgroup-v1", "process-group", "none")

log = structlog.get_logger("flightos.kernel")


def detect(mode: str | None = None) -> Containment:
    """The backend for ``mode`` (default ``$FLIGHTOS_CONTAINMENT`` or auto: v2, v1, process groups)."""
    mode = mode or os.environ.get(ENV_MODE) or "auto"
    if mode not in MODES:
        log.warning("kernel.containment_mode_unknown", mode=mode, known=list(MODES), using="auto")
        mode = "auto"
    tried: list[str] = []
    chosen: Containment | None = Containment() if mode == "none" else None
    for kind in ("cgroup-v2", "cgroup-v1"):
        if mode not in ("auto", kind):
            continue
        try:
            backend: CgroupV1 | CgroupV2 = (
                CgroupV2.probe(require_limits=mode == "auto") if kind == "cgroup-v2" else CgroupV1.probe()
            )
            backend.setup()
            chosen = backend
            break
        except (CgroupError, OSError) as exc:
            tried.append(f"{kind}: {exc}")
    if chosen is None:
        chosen = ProcessGroups()  # asked for, or no writable cgroups
    log.info("kernel.containment", backend=chosen.describe(), unavailable=tried or None)
    return chosen
