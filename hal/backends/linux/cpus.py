"""The CPUs this process may place work on: present CPUs ∩ its affinity mask ∩ its cgroup's cpuset.

In a container or a cpuset the kernel refuses ``sched_setaffinity`` to CPUs outside them (EINVAL),
so a core the HAL offers there would crash-loop the service placed on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hal.backends.linux.topology import format_cpu_list, parse_cpu_list
from hal.errors import HalParseError
from hal.fs import Fs


@dataclass(frozen=True)
class Cpuset:
    """The cpuset of this process's cgroup: where it was read, effective and configured CPUs."""

    path: str
    effective: frozenset[int]
    configured: frozenset[int] | None  # None: empty (v2 inherits the parent's) or unreadable


@dataclass(frozen=True)
class CpuAccess:
    """Which present CPUs are usable, and why each other one is not."""

    usable: list[int]
    excluded: dict[int, str] = field(default_factory=dict)
    affinity: frozenset[int] | None = None
    cpuset: Cpuset | None = None


def read_affinity(fs: Fs) -> frozenset[int] | None:
    """``os.sched_getaffinity(0)`` on this host; a recorded tree's ``/proc/self/status`` otherwise."""
    if str(fs.root) == "/":
        return frozenset(os.sched_getaffinity(0))
    status = fs.read_text("/proc/self/status")
    for line in (status or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Cpus_allowed_list":
            try:
                return frozenset(parse_cpu_list(value))
            except HalParseError:
                return None
    return None


def _mounts(fs: Fs) -> list[tuple[str, str, str]]:
    """(mount point, fstype, options) of every cgroup mount in ``/proc/self/mounts``."""
    out = []
    for line in (fs.read_text("/proc/self/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1], parts[2], parts[3]))
    return out


def _cpu_set(fs: Fs, path: str) -> frozenset[int] | None:
    text = fs.read_text(path)
    if not text:
        return None
    try:
        return frozenset(parse_cpu_list(text))
    except HalParseError:
        return None


def _find(fs: Fs, mount: str, group: str, effective_name: str, configured_name: str) -> Cpuset | None:
    """The cpuset files of ``group`` below ``mount``, or of its nearest ancestor that has them."""
    parts = [p for p in group.strip("/").split("/") if p]
    while True:
        base = "/".join([mount.rstrip("/"), *parts])
        effective = _cpu_set(fs, f"{base}/{effective_name}")
        if effective:
            return Cpuset(f"{base}/{effective_name}", effective, _cpu_set(fs, f"{base}/{configured_name}"))
        if not parts:
            return None
        parts.pop()


def read_cpuset(fs: Fs) -> Cpuset | None:
    """This process's cpuset from ``/proc/self/cgroup``: cgroup v2 first, then the v1 ``cpuset`` hierarchy."""
    v2_group: str | None = None
    v1_group: str | None = None
    for line in (fs.read_text("/proc/self/cgroup") or "").splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hier == "0" and controllers == "":
            v2_group = group
        elif "cpuset" in controllers.split(","):
            v1_group = group
    mounts = _mounts(fs)
    if v2_group is not None:
        points = [m for m, kind, _ in mounts if kind == "cgroup2"] or ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        for point in points:
            found = _find(fs, point, v2_group, "cpuset.cpus.effective", "cpuset.cpus")
            if found is not None:
                return found
    if v1_group is not None:
        points = [m for m, kind, opts in mounts if kind == "cgroup" and "cpuset" in opts.split(",")]
        for point in points or ["/sys/fs/cgroup/cpuset"]:
            found = _find(fs, point, v1_group, "cpuset.effective_cpus", "cpuset.cpus")
            if found is None:
                found = _find(fs, point, v1_group, "cpuset.cpus", "cpuset.cpus")
            if found is not None:
                return found
    return None


def cpu_access(fs: Fs, present: list[int], online: list[int]) -> CpuAccess:
    """Present CPUs minus those outside the cpuset or the affinity mask, each with its reason.

    An offline CPU is in neither the effective cpuset nor the affinity mask (the kernel leaves it
    out of both), so it stays listed unless the cpuset's configured CPUs leave it out.
    """
    try:
        affinity = read_affinity(fs)
    except OSError:
        affinity = None
    cpuset = read_cpuset(fs)
    up = set(online)
    excluded: dict[int, str] = {}
    for cpu in present:
        if cpuset is not None:
            if cpu in up and cpu not in cpuset.effective:
                excluded[cpu] = f"not in this process's cpuset ({cpuset.path}: {format_cpu_list(cpuset.effective)})"
                continue
            if cpu not in up and cpuset.configured is not None and cpu not in cpuset.configured:
                excluded[cpu] = "offline, and not in this process's configured cpuset"
                continue
        if affinity is not None and cpu in up and cpu not in affinity:
            excluded[cpu] = f"not in this process's affinity mask (sched_getaffinity: {format_cpu_list(affinity)})"
    usable = [c for c in present if c not in excluded]
    if not usable:  # garbage or a mismatched recording: never leave the board without cores
        return CpuAccess(list(present), {}, affinity, cpuset)
    return CpuAccess(usable, excluded, affinity, cpuset)
