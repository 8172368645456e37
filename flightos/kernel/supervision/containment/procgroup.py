"""The fallback where cgroups are not writable: a session per service, rlimits, and limits the kernel polls."""

from __future__ import annotations

import contextlib
import os
import resource
import signal

import msgspec

from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel.supervision.containment.base import Containment, Usage, memory_reason, tasks_reason

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = resource.getpagesize()


def tree(leader: int) -> list[tuple[int, list[str]]]:
    """A service's processes: its process group, and descendants that left it (``setsid``), each with
    the fields of ``/proc/<pid>/stat`` after the name."""
    procs: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            procs[int(entry.name)] = fields
    children: dict[int, list[int]] = {}
    for pid, fields in procs.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found = {pid for pid, fields in procs.items() if int(fields[2]) == leader}
    todo, seen = [leader, *found], set()
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            found.update(children.get(parent, []))
            todo += children.get(parent, [])
    return [(pid, procs[pid]) for pid in sorted(found) if pid in procs]


class ProcessGroups(Containment):
    """Each service leads its own session; a stop or restart kills the whole process group.

    Memory: RLIMIT_DATA of twice ``memory_mb`` per process is the hard stop, and the kernel kills the
    group once its proportional memory passes ``memory_mb``. Descendants that make a session of their
    own are found at each sample (by parent links) and their groups killed with the service's.
    Tasks: the kernel counts the tree's threads (RLIMIT_NPROC counts every process of the user, so it
    cannot limit one service).
    """

    kind = "process-group"

    def __init__(self) -> None:
        super().__init__()
        self._doomed: set[int] = set()
        self._escaped: dict[int, set[int]] = {}  # service pid -> process groups its descendants made

    def describe(self) -> str:
        """The backend."""
        return f"{self.kind} (rlimits and polled limits; cgroups not writable)"

    def prepare(self, spec: SpawnSpec) -> SpawnSpec:
        """A new session and rlimits for the child."""
        if self._janitor is None:
            self.start_janitor(["--pgroups"])
        return msgspec.structs.replace(spec, new_session=True, rlimits=True)

    def started(self, spec: SpawnSpec, pid: int) -> None:
        """Remember the group; tell the janitor."""
        super().started(spec, pid)
        self._tell(f"pg {pid}")

    def kill_tree(self, pid: int) -> None:
        """SIGKILL the process group (the service leads it) and groups its descendants made."""
        for pgid in (pid, *self._escaped.get(pid, ())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        super().kill_tree(pid)

    def _release(self, spec: SpawnSpec, pid: int) -> str | None:
        self._doomed.add(pid)
        self._doomed.update(self._escaped.pop(pid, set()))
        self.tidy()
        return None

    def tidy(self) -> None:
        """Kill again the groups of exited services until they are empty (never waits)."""
        for pgid in list(self._doomed):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                self._doomed.discard(pgid)
                self._tell(f"unpg {pgid}")
            except PermissionError:
                self._doomed.discard(pgid)

    def poll(self, pid: int) -> str | None:
        """Over ``memory_mb`` of resident memory, or more than ``tasks`` threads, in the group."""
        if self._doomed:
            self.tidy()
        spec = self._names.get(pid)
        if spec is None or pid in self._breach:
            return None
        use = self.usage(pid)
        if use is None:
            return None
        reason = None
        if spec.tasks and use.tasks > spec.tasks:
            reason = tasks_reason(spec.tasks)
        elif spec.memory_mb and use.memory_bytes > spec.memory_mb << 20:
            reason = memory_reason(spec.memory_mb)
        if reason is not None:
            self.flag(pid, reason)
        return reason

    def usage(self, pid: int) -> Usage | None:
        """Sums over the tree: CPU (plus the leader's reaped children), proportional memory, threads.

        Descendants found in their own process group (a job started with ``setsid``) are remembered,
        so a stop, an exit or the janitor kills their groups too.
        """
        group = tree(pid)
        if not group:
            return None
        escaped = self._escaped.setdefault(pid, set())
        cpu = mem = tasks = 0
        for member, f in group:
            pgid = int(f[2])
            if pgid != pid and pgid not in escaped:
                escaped.add(pgid)
                self._tell(f"pg {pgid}")
            cpu += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if member == pid else 0)
            mem += pss(member, int(f[21]) * _PAGE)
            tasks += int(f[17])
        return Usage(cpu_s=cpu / _TICK, memory_bytes=mem, tasks=tasks)


def pss(pid: int, rss: int) -> int:
    """Proportional set size (pages shared with forked siblings counted once in all), else ``rss``."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return rss


def apply_rlimits(spec: SpawnSpec) -> None:
    """In the child: the per-process memory backstop of the fallback."""
    if spec.memory_mb:
        limit = 2 * spec.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
