"""cpusets: pin a whole process tree to CPUs, in groups below this process's own cgroup, and say why not.

Groups are made under the cgroup the process already runs in (``/proc/self/cgroup``): under systemd that
is the unit's group, which ``Delegate=yes`` hands to the service, so the groups stay inside the unit. The
unified (v2) hierarchy is used when it offers the cpuset controller there; otherwise the v1 ``cpuset``
hierarchy (JetPack 5 and other hybrid set-ups bind cpuset to v1).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hal.backends.linux.topology import format_cpu_list, parse_cpu_list
from hal.errors import HalError, HalParseError, HalUnsupported

DEFAULT_PARENT = "cpusets"
"""The group below the process's own cgroup that holds the cpuset groups."""
LEAF = "kernel"
"""v2: the leaf the process's own cgroup's members move to, so that it may enable controllers below it
(a v2 group with processes cannot); the kernel's containment uses the same leaf."""


@dataclass(frozen=True)
class CpusetSupport:
    """Whether cpusets can be used here; ``reason`` says why not; ``mount`` is the hierarchy's mount point,
    ``version`` "v2" or "v1", ``base`` the process's own cgroup directory, where groups are made."""

    available: bool
    reason: str
    mount: str | None
    version: str | None = None
    base: str | None = None


@dataclass(frozen=True)
class _Mount:
    point: str
    root: str


def _mounts(root: Path) -> tuple[_Mount | None, _Mount | None]:
    """The cgroup2 mount and the v1 mount carrying cpuset, from mountinfo (or the plainer mounts file)."""
    v2: _Mount | None = None
    v1: _Mount | None = None
    try:
        text = (root / "proc/self/mountinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        mount = _Mount(fields[4].replace("\\040", " "), fields[3])
        if rest[0] == "cgroup2" and (v2 is None or mount.point == "/sys/fs/cgroup"):
            v2 = mount
        elif rest[0] == "cgroup" and "cpuset" in rest[2].split(",") and v1 is None:
            v1 = mount
    if text:
        return v2, v1
    try:
        text = (root / "proc/self/mounts").read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 4 and f[2] == "cgroup2" and (v2 is None or f[1] == "/sys/fs/cgroup"):
            v2 = _Mount(f[1], "/")
        elif len(f) >= 4 and f[2] == "cgroup" and "cpuset" in f[3].split(",") and v1 is None:
            v1 = _Mount(f[1], "/")
    return v2, v1


def _own_paths(root: Path) -> dict[str, str]:
    """The process's cgroup path per hierarchy (``""`` for v2, controller names for v1)."""
    paths: dict[str, str] = {}
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctrl in parts[1].split(",") if parts[1] else [""]:
                paths[ctrl] = parts[2]
    return paths


def _own_dir(root: Path, mount: _Mount, path: str) -> Path:
    """The directory of the process's group: the mount point plus its path inside the mounted subtree."""
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        path = path[len(mount.root) :]
    return root / mount.point.lstrip("/") / path.lstrip("/")


def _display(root: Path, d: Path) -> str:
    """A path as it is on the board (without the test root)."""
    return "/" + str(d.relative_to(root)).lstrip("./") if d.is_relative_to(root) else str(d)


def probe(root: str = "/") -> CpusetSupport:
    """Find where this process may make cpuset groups: its own v2 group, else its own v1 cpuset group."""
    base = Path(root)
    v2, v1 = _mounts(base)
    own = _own_paths(base)
    reasons: list[str] = []
    if v2 is not None and "" in own:
        d = _own_dir(base, v2, own[""])
        shown = _display(base, d)
        try:
            controllers = (d / "cgroup.controllers").read_text().split()
        except OSError as exc:
            controllers = []
            reasons.append(f"cannot read {shown}/cgroup.controllers: {exc.strerror or exc}")
        else:
            if "cpuset" not in controllers:
                reasons.append(
                    f"cgroup v2 is mounted at {v2.point} but the cpuset controller is not available in "
                    f"{shown} (controllers: {' '.join(controllers) or 'none'}; it may be bound to a "
                    "v1 hierarchy, or the unit lacks Delegate=yes)"
                )
            elif not os.access(d / "cgroup.subtree_control", os.W_OK):
                reasons.append(
                    f"{shown}/cgroup.subtree_control is not writable (run as root, or as a systemd "
                    "unit with Delegate=yes)"
                )
            else:
                return CpusetSupport(True, "", v2.point, "v2", str(d))
    elif v2 is None:
        reasons.append("no cgroup v2 hierarchy is mounted")
    if v1 is not None and "cpuset" in own:
        d = _own_dir(base, v1, own["cpuset"])
        if os.access(d, os.W_OK) and (d / "cgroup.procs").exists():
            return CpusetSupport(True, "", v1.point, "v1", str(d))
        reasons.append(f"the v1 cpuset group {_display(base, d)} is not writable")
    elif v1 is None and v2 is not None:
        reasons.append("no v1 cpuset hierarchy either")
    reason = "; ".join(reasons) or "this process's cgroup is unknown (no /proc/self/cgroup)"
    return CpusetSupport(False, reason, v2.point if v2 else (v1.point if v1 else None))


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as exc:
        raise HalError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _enable_cpuset(dir_: Path) -> None:
    if "cpuset" not in _read(dir_ / "cgroup.subtree_control").split():
        _write(dir_ / "cgroup.subtree_control", "+cpuset")


def _vacate(base: Path) -> Path:
    """v2: move the processes of a non-root group into its leaf, so that it may enable controllers; the
    group processes go back to on remove()."""
    pids = _read(base / "cgroup.procs").split()
    if not (base / "cgroup.type").exists() or not pids:
        return base
    leaf = base / LEAF
    try:
        leaf.mkdir(exist_ok=True)
    except OSError as exc:
        raise HalError(f"cannot make {leaf}: {exc.strerror or exc}") from exc
    for pid in pids:
        try:
            _write(leaf / "cgroup.procs", pid)
        except HalError:
            pass  # exited meanwhile (a kernel thread cannot be in a non-root group)
    return leaf


def _inherit(d: Path, parent: Path) -> None:
    """v1: a new cpuset group starts with no CPUs and no memory nodes; give it its parent's."""
    for f in ("cpuset.cpus", "cpuset.mems"):
        if not _read(d / f):
            _write(d / f, _read(parent / f))


class CpusetGroup:
    """One cgroup with its own ``cpuset.cpus``; processes moved into it take their threads along."""

    def __init__(self, path: Path, home: Path, version: str = "v2") -> None:
        self.path = path
        self.home = home
        """Where remove() puts processes still in the group (the process's own group, or its leaf)."""
        self.version = version

    @classmethod
    def create(cls, name: str, cpus: Iterable[int], *, parent: str = DEFAULT_PARENT, root: str = "/") -> CpusetGroup:
        """Create (or reuse) <own cgroup>/<parent>/<name> pinned to ``cpus``."""
        if not name or "/" in name or name.startswith(".") or name == LEAF:
            raise HalError(f"bad cpuset group name {name!r}")
        support = probe(root)
        if not support.available or support.base is None:
            raise HalUnsupported(f"cpusets unavailable: {support.reason}")
        base = Path(support.base)
        parent_dir = base / parent
        try:
            if support.version == "v2":
                home = _vacate(base)
                _enable_cpuset(base)
                parent_dir.mkdir(exist_ok=True)
                _enable_cpuset(parent_dir)
                (parent_dir / name).mkdir(exist_ok=True)
            else:
                home = base
                parent_dir.mkdir(exist_ok=True)
                _inherit(parent_dir, base)
                (parent_dir / name).mkdir(exist_ok=True)
                _inherit(parent_dir / name, parent_dir)
        except OSError as exc:
            raise HalError(f"cannot make a cpuset group under {base}: {exc.strerror or exc}") from exc
        group = cls(parent_dir / name, home, support.version or "v2")
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
        return self._read_list("cpuset.cpus.effective" if self.version == "v2" else "cpuset.effective_cpus")

    def pids(self) -> list[int]:
        """Processes in the group."""
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError as exc:
            raise HalError(f"cannot read {self.path}/cgroup.procs: {exc}") from exc

    def remove(self) -> None:
        """Move remaining processes back to the group they came from and delete the group (and its parent
        group when this was the last one in it)."""
        for pid in self.pids():
            try:
                _write(self.home / "cgroup.procs", str(pid))
            except HalError:
                pass  # the process exited meanwhile
        try:
            self.path.rmdir()
        except OSError as exc:
            raise HalError(f"cannot remove {self.path}: {exc.strerror or exc}") from exc
        try:
            self.path.parent.rmdir()
        except OSError:
            pass  # other groups remain in it
