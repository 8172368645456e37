"""Cgroup backends: one group per service incarnation, under a group of this kernel's own."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel.supervision.containment import cgroupfs as fs
from flightos.kernel.supervision.containment.base import Containment, Usage, memory_reason, tasks_reason
from flightos.kernel.supervision.containment.procgroup import pss


class CgroupError(Exception):
    """A cgroup hierarchy cannot be used (not mounted, not writable, controllers missing)."""


def _group_name(spec: SpawnSpec) -> str:
    return f"svc-{spec.name}.{spec.incarnation}"


class _Cgroups(Containment):
    """What v1 and v2 share: the kernel's groups, stale sweeping, the janitor, breach bookkeeping."""

    def __init__(self, parents: dict[str, Path]) -> None:
        super().__init__()
        self.parents = parents  # hierarchy -> the group this kernel was started in
        self.kernel_dirs: dict[str, Path] = {}
        self.groups: dict[int, dict[str, Path]] = {}
        self._pending: dict[tuple[str, int], dict[str, Path]] = {}
        self._doomed: list[dict[str, Path]] = []
        self.swept: list[str] = []

    def describe(self) -> str:
        """The backend and the kernel's group(s)."""
        where = ", ".join(str(d) for d in self.kernel_dirs.values()) or "not set up"
        return f"{self.kind} at {where}" + (f" (removed stale groups: {', '.join(self.swept)})" if self.swept else "")

    def setup(self) -> None:
        """Remove groups of dead kernels, make this kernel's group in each hierarchy, start the janitor."""
        name = fs.kernel_group_name()
        for ctrl, parent in self.parents.items():
            freezer = self.parents.get("freezer") if ctrl != "freezer" else None
            self.swept += [s for s in fs.sweep_stale(parent, freezer) if s not in self.swept]
            d = parent / name
            try:
                d.mkdir(exist_ok=True)
                self._init_dir(ctrl, d, parent)
            except OSError as exc:
                for made in self.kernel_dirs.values():
                    fs.remove_tree(made, 0.1)
                self.kernel_dirs.clear()
                raise CgroupError(f"cannot make {d}: {exc}") from exc
            self.kernel_dirs[ctrl] = d
        args = [f"--group={d}" for c, d in self.kernel_dirs.items() if c != "freezer"]
        if "freezer" in self.kernel_dirs:
            args.append(f"--freezer={self.kernel_dirs['freezer']}")
        self.start_janitor(args)

    def _init_dir(self, ctrl: str, d: Path, parent: Path) -> None:
        """Hook: make a new group usable (cpuset needs cpus and mems; v2 enables controllers)."""

    def prepare(self, spec: SpawnSpec) -> SpawnSpec:
        """Make the incarnation's group with its limits; the child joins it before anything else."""
        if not self.kernel_dirs:
            self.setup()
        self.tidy()
        name = _group_name(spec)
        n = 1
        while any((kdir / name).exists() for kdir in self.kernel_dirs.values()):
            n += 1  # an incarnation number seen before, its group not gone yet: never reuse its counters
            name = f"{_group_name(spec)}-{n}"
        dirs: dict[str, Path] = {}
        for ctrl, kdir in self.kernel_dirs.items():
            d = kdir / name
            d.mkdir()
            self._init_dir(ctrl, d, kdir)
            self._limit(ctrl, d, spec)
            dirs[ctrl] = d
        self._pending[(spec.name, spec.incarnation)] = dirs
        return msgspec.structs.replace(
            spec, new_session=True, cgroups=sorted({str(d / "cgroup.procs") for d in dirs.values()})
        )

    def _limit(self, ctrl: str, d: Path, spec: SpawnSpec) -> None:
        """Hook: write the spec's limits into a new group."""

    def started(self, spec: SpawnSpec, pid: int) -> None:
        """Bind the prepared group to the pid."""
        super().started(spec, pid)
        self.groups[pid] = self._pending.pop((spec.name, spec.incarnation), {})

    def discard(self, spec: SpawnSpec) -> None:
        """Remove the group of a spawn that failed."""
        dirs = self._pending.pop((spec.name, spec.incarnation), None)
        if dirs:
            self._doomed.append(dirs)
            self.tidy()

    def kill_tree(self, pid: int) -> None:
        """SIGKILL every process in the service's group."""
        dirs = self.groups.get(pid)
        if dirs:
            self._kill(dirs)
        super().kill_tree(pid)

    def _kill(self, dirs: dict[str, Path], timeout_s: float = 0) -> bool:
        """One pass (or, with a timeout, until empty); True when the group is empty."""
        main = dirs.get("", dirs.get("pids", dirs.get("memory")))
        return main is None or fs.kill_group(main, dirs.get("freezer", dirs.get("")), timeout_s)

    def _release(self, spec: SpawnSpec, pid: int) -> str | None:
        dirs = self.groups.pop(pid, {})
        if not dirs:
            return None
        reason = self.breach(spec, dirs)
        self._kill(dirs)
        self._doomed.append(dirs)
        self.tidy()
        return reason

    def tidy(self) -> None:
        """Kill again and remove the groups of exited incarnations (never waits: runs on the event loop)."""
        left: list[dict[str, Path]] = []
        for dirs in self._doomed:
            self._kill(dirs)
            if not all(fs.remove_tree(d, 0) for d in dirs.values()):
                left.append(dirs)
        self._doomed = left

    def breach(self, spec: SpawnSpec, dirs: dict[str, Path]) -> str | None:
        """Hook: the limit a group has hit (OOM kill, refused fork), or None."""
        return None

    def poll(self, pid: int) -> str | None:
        """An OOM kill or a refused fork in a running service's group (once per incarnation)."""
        if self._doomed:
            self.tidy()
        spec, dirs = self._names.get(pid), self.groups.get(pid)
        if spec is None or not dirs or pid in self._breach:
            return None
        reason = self.breach(spec, dirs)
        if reason is not None:
            self.flag(pid, reason)
        return reason

    def close(self) -> None:
        """Kill every service, remove this kernel's groups (waits up to a few seconds: not on the event loop)."""
        for pid in list(self._names):
            self.kill_tree(pid)
            self.exited(pid)
        main = self.kernel_dirs.get("", self.kernel_dirs.get("pids"))
        if main is not None:
            fs.kill_group(main, self.kernel_dirs.get("freezer"), 2.0)
        for d in self.kernel_dirs.values():
            fs.remove_tree(d, 1.0)
        self._doomed.clear()
        super().close()


class CgroupV1(_Cgroups):
    """Separate v1 hierarchies (this container, JetPack 5): memory and pids limit, freezer stops, cpuacct counts."""

    kind = "cgroup-v1"

    @classmethod
    def probe(cls) -> CgroupV1:
        """The v1 hierarchies this process may make groups in; CgroupError when memory or pids is missing."""
        parents: dict[str, Path] = {}
        for ctrl in fs.V1_CONTROLLERS:
            d = fs.own_dir(ctrl)
            if d is not None and d.is_dir() and os.access(d, os.W_OK) and (d / "cgroup.procs").exists():
                parents[ctrl] = d
        missing = [c for c in ("memory", "pids") if c not in parents]
        if missing:
            raise CgroupError("v1 " + " and ".join(missing) + " not mounted or not writable")
        return cls(parents)

    def _init_dir(self, ctrl: str, d: Path, parent: Path) -> None:
        if ctrl == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not fs.read(d / f).strip():
                    fs.write(d / f, fs.read(parent / f).strip())

    def _limit(self, ctrl: str, d: Path, spec: SpawnSpec) -> None:
        if ctrl == "memory" and spec.memory_mb:
            fs.write(d / "memory.limit_in_bytes", str(spec.memory_mb << 20))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to limit
                fs.write(d / "memory.memsw.limit_in_bytes", str(spec.memory_mb << 20))
        elif ctrl == "pids" and spec.tasks:
            fs.write(d / "pids.max", str(spec.tasks))
        # cpuset keeps the kernel's CPUs: placement moves a running service by affinity, which a narrower
        # cpuset would refuse (the service would be restarted instead of moved)

    def breach(self, spec: SpawnSpec, dirs: dict[str, Path]) -> str | None:
        """memory.oom_control's oom_kill, then pids.events' max."""
        if "memory" in dirs and fs.keyed(dirs["memory"] / "memory.oom_control").get("oom_kill", 0) > 0:
            return memory_reason(spec.memory_mb)
        if "pids" in dirs:
            refused = fs.keyed(dirs["pids"] / "pids.events").get("max", 0)
            if refused > 0:
                return tasks_reason(spec.tasks, refused)
        return None

    def usage(self, pid: int) -> Usage | None:
        """cpuacct.usage, memory.usage_in_bytes less inactive file cache, pids.current."""
        dirs = self.groups.get(pid)
        if not dirs or "memory" not in dirs:
            return None
        cpu_ns = fs.read_int(dirs["cpuacct"] / "cpuacct.usage") if "cpuacct" in dirs else None
        if cpu_ns is None:
            return None
        mem = fs.read_int(dirs["memory"] / "memory.usage_in_bytes") or 0
        mem -= fs.keyed(dirs["memory"] / "memory.stat").get("total_inactive_file", 0)
        tasks = fs.read_int(dirs["pids"] / "pids.current") or 0
        return Usage(cpu_s=cpu_ns / 1e9, memory_bytes=max(mem, 0), tasks=tasks)


class CgroupV2(_Cgroups):
    """The unified hierarchy, under the kernel's own (delegated) group: memory.max, pids.max, cgroup.kill."""

    kind = "cgroup-v2"

    @classmethod
    def probe(cls, require_limits: bool = True) -> CgroupV2:
        """The kernel's v2 group when it is writable (and, unless forced, offers memory and pids)."""
        d = fs.own_dir("")
        if d is None or not d.is_dir() or not os.access(d, os.W_OK):
            raise CgroupError("no writable cgroup v2 group")
        controllers = [c for c in fs.read(d / "cgroup.controllers").split() if c in ("memory", "pids", "cpu")]
        if require_limits and not {"memory", "pids"} <= set(controllers):
            raise CgroupError(f"cgroup v2 at {d} offers no memory and pids controllers")
        return cls({"": d}, controllers, require_limits)

    def __init__(self, parents: dict[str, Path], controllers: list[str], require_limits: bool = True) -> None:
        super().__init__(parents)
        self.controllers = controllers
        self.require_limits = require_limits

    def setup(self) -> None:
        """Move the kernel into a leaf when its group is not the root (a v2 group with processes cannot
        delegate controllers), enable memory and pids below it, then make the kernel's group."""
        base = self.parents[""]
        if (base / "cgroup.type").exists() and os.getpid() in fs.procs(base):
            leaf = base / "kernel"
            try:
                leaf.mkdir(exist_ok=True)
                fs.write(leaf / "cgroup.procs", str(os.getpid()))
            except OSError as exc:
                raise CgroupError(f"cannot move the kernel into {leaf}: {exc}") from exc
        self._enable(base)
        super().setup()
        have = set(fs.read(self.kernel_dirs[""] / "cgroup.subtree_control").split())
        if self.require_limits and not {"memory", "pids"} <= have:
            super().close()
            raise CgroupError(f"cannot enable memory and pids below {base}")

    def _enable(self, d: Path) -> None:
        """Enable the controllers for the groups below ``d``, one by one (one refused must not stop the rest)."""
        for c in self.controllers:
            with contextlib.suppress(OSError):
                fs.write(d / "cgroup.subtree_control", "+" + c)

    def _init_dir(self, ctrl: str, d: Path, parent: Path) -> None:
        if d.name.startswith(fs.KERNEL_PREFIX):
            self._enable(d)

    def _limit(self, ctrl: str, d: Path, spec: SpawnSpec) -> None:
        if spec.memory_mb and (d / "memory.max").exists():
            fs.write(d / "memory.max", str(spec.memory_mb << 20))
            with contextlib.suppress(OSError):
                fs.write(d / "memory.oom.group", "1")  # an OOM kill takes the whole service, not one child
        if spec.tasks and (d / "pids.max").exists():
            fs.write(d / "pids.max", str(spec.tasks))

    def breach(self, spec: SpawnSpec, dirs: dict[str, Path]) -> str | None:
        """memory.events' oom_kill, then pids.events' max."""
        d = dirs[""]
        events = fs.keyed(d / "memory.events")
        if events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0:
            return memory_reason(spec.memory_mb)
        refused = fs.keyed(d / "pids.events").get("max", 0)
        return tasks_reason(spec.tasks, refused) if refused > 0 else None

    def usage(self, pid: int) -> Usage | None:
        """cpu.stat's usage_usec, memory.current less inactive file cache, pids.current (or the procs)."""
        dirs = self.groups.get(pid)
        if not dirs:
            return None
        d = dirs[""]
        usec = fs.keyed(d / "cpu.stat").get("usage_usec")
        if usec is None:
            return None
        members = fs.procs(d)
        mem = fs.read_int(d / "memory.current")
        if mem is None:  # no memory controller delegated: the members' proportional sizes
            mem = sum(pss(pid, 0) for pid in members)
        else:
            mem -= fs.keyed(d / "memory.stat").get("inactive_file", 0)
        tasks = fs.read_int(d / "pids.current")
        return Usage(cpu_s=usec / 1e6, memory_bytes=max(mem, 0), tasks=tasks if tasks is not None else len(members))
