"""cgroup-v2 cpusets: pin a whole process tree to CPUs, and say clearly when that is impossible."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hal.backends.linux.topology import format_cpu_list, parse_cpu_list
from hal.errors import HalError, HalParseError, HalUnsupported

DEFAULT_PARENT = "flightos"


@dataclass(frozen=True)
class CpusetSupport:
    """Whether cpusets can be used here; ``reason`` says why not; ``mount`` is the v2 mount."""

    available: bool
    reason: str
    mount: str | None


def _v2_mounts(root: Path) -> list[str]:
    try:
        text = (root / "proc/self/mounts").read_text()
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            mounts.append(fields[1])
    return mounts


def probe(root: str = "/") -> CpusetSupport:
    """Find a writable cgroup-v2 hierarchy with the cpuset controller available."""
    base = Path(root)
    mounts = _v2_mounts(base)
    if not mounts:
        return CpusetSupport(False, "no cgroup v2 hierarchy is mounted", None)
    mount = "/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts else mounts[0]
    real = base / mount.lstrip("/")
    try:
        controllers = (real / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return CpusetSupport(False, f"cannot read {mount}/cgroup.controllers: {exc}", mount)
    if "cpuset" not in controllers:
        return CpusetSupport(
            False,
            f"cgroup v2 is mounted at {mount} but the cpuset controller is not available there "
            f"(controllers: {' '.join(controllers) or 'none'}; it may be bound to a v1 hierarchy)",
            mount,
        )
    if not os.access(real / "cgroup.subtree_control", os.W_OK):
        return CpusetSupport(False, f"{mount}/cgroup.subtree_control is not writable", mount)
    return CpusetSupport(True, "", mount)


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as exc:
        raise HalError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc


def _enable_cpuset(dir_: Path) -> None:
    control = dir_ / "cgroup.subtree_control"
    try:
        current = control.read_text().split()
    except OSError:
        current = []
    if "cpuset" not in current:
        _write(control, "+cpuset")


class CpusetGroup:
    """One cgroup with its own ``cpuset.cpus``; processes moved into it take their threads along."""

    def __init__(self, path: Path, mount: Path) -> None:
        self.path = path
        self.mount = mount

    @classmethod
    def create(cls, name: str, cpus: Iterable[int], *, parent: str = DEFAULT_PARENT, root: str = "/") -> CpusetGroup:
        """Create (or reuse) <mount>/<parent>/<name> pinned to ``cpus``."""
        if not name or "/" in name or name.startswith("."):
            raise HalError(f"bad cpuset group name {name!r}")
        support = probe(root)
        if not support.available or support.mount is None:
            raise HalUnsupported(f"cpusets unavailable: {support.reason}")
        mount = Path(root) / support.mount.lstrip("/")
        _enable_cpuset(mount)
        parent_dir = mount / parent
        parent_dir.mkdir(exist_ok=True)
        _enable_cpuset(parent_dir)
        group = cls(parent_dir / name, mount)
        group.path.mkdir(exist_ok=True)
        group.set_cpus(cpus)
        return group

    def set_cpus(self, cpus: Iterable[int]) -> None:
        """Change the group's CPUs (all its processes follow at once)."""
        mask = sorted(set(cpus))
        if not mask:
            raise HalError("a cpuset needs at least one CPU")
        _write(self.path / "cpuset.cpus", format_cpu_list(mask))

    def add(self, pid: int) -> None:
        """Move a process (all its threads) into the group."""
        _write(self.path / "cgroup.procs", str(pid))

    def _read_list(self, name: str) -> frozenset[int]:
        try:
            return frozenset(parse_cpu_list((self.path / name).read_text()))
        except (OSError, HalParseError) as exc:
            raise HalError(f"cannot read {self.path / name}: {exc}") from exc

    def cpus(self) -> frozenset[int]:
        """CPUs configured for the group."""
        return self._read_list("cpuset.cpus")

    def effective_cpus(self) -> frozenset[int]:
        """CPUs the group really gets (follows hotplug; the parent's when it would be empty)."""
        return self._read_list("cpuset.cpus.effective")

    def pids(self) -> list[int]:
        """Processes in the group."""
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError as exc:
            raise HalError(f"cannot read {self.path}/cgroup.procs: {exc}") from exc

    def remove(self) -> None:
        """Move remaining processes to the root group and delete the group."""
        for pid in self.pids():
            try:
                _write(self.mount / "cgroup.procs", str(pid))
            except HalError:
                pass  # the process exited meanwhile
        try:
            self.path.rmdir()
        except OSError as exc:
            raise HalError(f"cannot remove {self.path}: {exc.strerror or exc}") from exc
