"""A slow board on a fast machine: confine a runtime to a fraction of one CPU, for the slow-board profile.

In order of preference: a cgroup v1 ``cpu`` quota (the CI machines), a cgroup v2 ``cpu.max``, or
pinning the runtime to one CPU beside busy neighbour processes pinned there too. ``confine()``
says which it used and why the others could not be, so a skip can name the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CannotConfine(Exception):
    """Neither a CPU quota nor CPU-hog neighbours can be had here; the message says why."""


@dataclass
class Confinement:
    """How a runtime is held to a fraction of a CPU: ``preexec`` runs in its child before exec."""

    how: str
    fraction: float
    preexec: Callable[[], None]
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _quota_dir(fraction: float, tried: list[str]) -> tuple[str, Path] | None:
    """A fresh cgroup with a CPU quota of ``fraction`` of one CPU (v1 ``cpu`` first, then v2), or None."""
    name = f"flightos-slowboard-{os.getpid()}"
    quota = max(1000, int(fraction * PERIOD_US))
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        d = v1 / name
        try:
            d.mkdir(exist_ok=True)
            (d / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (d / "cpu.cfs_quota_us").write_text(str(quota))
            return "cgroup v1 cpu.cfs_quota_us", d
        except OSError as exc:
            tried.append(f"cgroup v1 cpu at {v1}: {exc}")
            with contextlib.suppress(OSError):
                d.rmdir()
    else:
        tried.append(f"no cgroup v1 cpu hierarchy at {v1}")
    try:
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    except OSError:
        controllers = []
    if "cpu" in controllers:
        d = CGROUP_ROOT / name
        try:
            with contextlib.suppress(OSError):
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+cpu")
            d.mkdir(exist_ok=True)
            (d / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            return "cgroup v2 cpu.max", d
        except OSError as exc:
            tried.append(f"cgroup v2 cpu.max at {CGROUP_ROOT}: {exc}")
            with contextlib.suppress(OSError):
                d.rmdir()
    else:
        tried.append(f"cgroup v2 at {CGROUP_ROOT} has no cpu controller")
    return None


def _join(procs: Path) -> Callable[[], None]:
    def preexec() -> None:
        procs.write_text("0")  # this (child) process; what it starts stays in the group

    return preexec


def _hogs(fraction: float, tried: list[str]) -> Confinement:
    """Pin the runtime to one CPU shared with enough busy neighbours to leave it about ``fraction`` of it."""
    try:
        cpu = min(os.sched_getaffinity(0))
    except OSError as exc:
        tried.append(f"CPU affinity: {exc}")
        raise CannotConfine("; ".join(tried)) from exc
    n = max(1, round(1 / fraction) - 1)
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL) for _ in range(n)]

    def stop() -> None:
        for h in hogs:
            h.kill()
            h.wait()

    def preexec() -> None:
        os.sched_setaffinity(0, {cpu})

    return Confinement(
        f"pinned to cpu{cpu} beside {n} CPU-hog neighbour(s) ({'; '.join(tried)})", 1 / (n + 1), preexec, [stop]
    )


@contextlib.contextmanager
def confine(fraction: float) -> Iterator[Confinement]:
    """Yield a Confinement of about ``fraction`` of one CPU; undo it after. CannotConfine names why not."""
    tried: list[str] = []
    found = _quota_dir(fraction, tried)
    if found is not None:
        how, d = found
        conf = Confinement(how, fraction, _join(d / "cgroup.procs"))

        def remove() -> None:
            for _ in range(50):  # the group empties when the runtime's last process is reaped
                try:
                    d.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)

        conf.cleanup.append(remove)
    else:
        conf = _hogs(fraction, tried)
    try:
        yield conf
    finally:
        for undo in conf.cleanup:
            undo()
