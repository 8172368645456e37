"""In the new service process, before the plugin loads: join the service's groups, lead a session, set rlimits."""

from __future__ import annotations

import os
import sys

from flightos.host.spawn_spec import SpawnSpec


def enter(spec: SpawnSpec) -> None:
    """Apply the containment the kernel prepared; a failure is reported and the service still runs."""
    pid = str(os.getpid())
    for procs in spec.cgroups:
        try:
            with open(procs, "w") as f:
                f.write(pid)
        except OSError as exc:
            print(f"flightos: {spec.name}: cannot join {procs}: {exc}; running outside it", file=sys.stderr)
    if spec.new_session:
        try:
            os.setsid()
        except OSError:
            pass  # already a group leader
    if spec.rlimits:
        from flightos.kernel.supervision.containment.procgroup import apply_rlimits

        try:
            apply_rlimits(spec)
        except (OSError, ValueError) as exc:
            print(f"flightos: {spec.name}: cannot set rlimits: {exc}", file=sys.stderr)
