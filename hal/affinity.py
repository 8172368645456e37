"""CPU affinity of whole processes: every thread in /proc/<pid>/task, not just the main one."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from hal.errors import HalError

#: How many times the thread list is re-walked to catch threads created during the walk.
MAX_PASSES = 5


def _tids(pid: int) -> list[int]:
    try:
        names = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError as exc:
        raise HalError(f"process {pid} does not exist") from exc
    except OSError as exc:
        raise HalError(f"cannot list threads of process {pid}: {exc.strerror}") from exc
    return sorted(int(n) for n in names if n.isdigit())


def _usable_cpus() -> str:
    """The CPUs this process may use (its affinity mask, within its cpuset) and those online."""
    try:
        allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    except OSError:
        allowed = "unknown"
    try:
        with open("/sys/devices/system/cpu/online") as fh:
            online = fh.read().strip()
    except OSError:
        online = "unknown"
    return f"this process may use CPUs {allowed}; online: {online}"


def set_process_affinity(pid: int, cpus: Iterable[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus``; threads that exit meanwhile are ignored."""
    mask = frozenset(int(c) for c in cpus)
    if not mask:
        raise HalError(f"cannot pin process {pid} to an empty CPU set")
    if any(c < 0 for c in mask):
        raise HalError(f"cannot pin process {pid}: negative CPU number in {sorted(mask)}")
    done: set[int] = set()
    for _ in range(MAX_PASSES):
        todo = [t for t in _tids(pid) if t not in done]
        if not todo:
            break
        for tid in todo:
            try:
                os.sched_setaffinity(tid, mask)
            except ProcessLookupError:
                pass  # the thread exited during the walk
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise HalError(
                        f"cannot pin process {pid} to CPUs {sorted(mask)}: none of them is usable "
                        f"({_usable_cpus()}; a container or cpuset limits the first)"
                    ) from exc
                if exc.errno == errno.ESRCH:
                    continue
                raise HalError(f"cannot set affinity of thread {tid} of process {pid}: {exc.strerror}") from exc
            done.add(tid)
    if not done and not os.path.exists(f"/proc/{pid}"):
        raise HalError(f"process {pid} exited before its affinity could be set")


def get_process_affinity(pid: int) -> frozenset[int]:
    """CPUs the main thread of ``pid`` may run on."""
    try:
        return frozenset(os.sched_getaffinity(pid))
    except ProcessLookupError as exc:
        raise HalError(f"process {pid} does not exist") from exc


def thread_affinities(pid: int) -> dict[int, frozenset[int]]:
    """Thread id -> allowed CPUs, for every live thread of ``pid``."""
    out: dict[int, frozenset[int]] = {}
    for tid in _tids(pid):
        try:
            out[tid] = frozenset(os.sched_getaffinity(tid))
        except (ProcessLookupError, OSError):
            continue
    return out
