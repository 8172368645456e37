"""Small helpers over the cgroup file systems: where our groups are, and reading, writing and killing them."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

V1_CONTROLLERS = ("memory", "pids", "freezer", "cpuacct", "cpuset")
"""The v1 hierarchies a service group is made in (memory and pids are required, the rest used if present)."""
KERNEL_PREFIX = "flightos-"
"""Name of a kernel's group: ``flightos-<kernel pid>-<its start time>``, so a dead owner can be recognised."""


def own_cgroups(pid: int | str = "self") -> dict[str, str]:
    """The process's cgroup path per hierarchy: controller name (or ``""`` for v2) -> path."""
    paths: dict[str, str] = {}
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ctrls.split(",") if ctrls else [""]:
            paths[ctrl] = path
    return paths


def mounts() -> dict[str, tuple[str, str]]:
    """Mounted cgroup hierarchies: controller (``""`` for v2) -> (mount point, root inside the hierarchy)."""
    found: dict[str, tuple[str, str]] = {}
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        root, point = fields[3], fields[4].replace("\\040", " ")
        if rfields[0] == "cgroup2":
            found.setdefault("", (point, root))
        elif rfields[0] == "cgroup":
            for opt in rfields[2].split(","):
                if opt in V1_CONTROLLERS:
                    found.setdefault(opt, (point, root))
    return found


def own_dir(ctrl: str) -> Path | None:
    """The directory of this process's own group in one hierarchy, or None when it is not mounted."""
    where = mounts().get(ctrl)
    path = own_cgroups().get(ctrl)
    if where is None or path is None:
        return None
    point, root = where
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return Path(point) / path.lstrip("/")


def read(path: Path) -> str:
    """A control file's text ('' when it cannot be read)."""
    try:
        return path.read_text()
    except OSError:
        return ""


def read_int(path: Path) -> int | None:
    """A control file holding one integer ('max' and unreadable files give None)."""
    text = read(path).strip()
    return int(text) if text.lstrip("-").isdigit() else None


def keyed(path: Path) -> dict[str, int]:
    """A flat-keyed control file (``memory.events``, ``pids.events``, ``memory.stat``…) as a dict."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write(path: Path, value: str) -> None:
    """Write a control file; raises OSError."""
    with open(path, "w") as f:
        f.write(value)


def procs(group: Path) -> list[int]:
    """The pids in a group (not its sub-groups)."""
    return [int(p) for p in read(group / "cgroup.procs").split() if p.isdigit()]


def start_time(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (None when it is gone)."""
    stat = read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def kernel_group_name(pid: int | None = None) -> str:
    """This kernel's group name."""
    pid = pid or os.getpid()
    return f"{KERNEL_PREFIX}{pid}-{start_time(pid) or 0}"


def owner_alive(name: str) -> bool:
    """Whether the kernel that made a ``flightos-<pid>-<start>`` group is still running."""
    try:
        pid_s, start_s = name[len(KERNEL_PREFIX) :].split("-", 1)
        return start_time(int(pid_s)) == int(start_s)
    except ValueError:
        return True  # not ours to judge


def kill_group(group: Path, freezer: Path | None = None, timeout_s: float = 2.0) -> bool:
    """SIGKILL every process of a group and its sub-groups (v2: cgroup.kill; else freeze, kill, thaw).

    Returns True when the group is empty afterwards; ``timeout_s=0`` makes one pass without waiting
    (for the kernel's event loop: frozen or cgroup.kill'ed tasks cannot escape it).
    """
    if not group.is_dir():
        return True
    if (group / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            write(group / "cgroup.kill", "1")
    deadline = time.monotonic() + timeout_s
    while True:
        pids = _tree_procs(group)
        if not pids:
            return True
        if time.monotonic() > deadline and timeout_s > 0:
            return False
        frozen = freezer is not None and _set_frozen(freezer, True, 0.5 if timeout_s > 0 else 0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if frozen and freezer is not None:
            _set_frozen(freezer, False)
        if timeout_s <= 0:
            return False
        time.sleep(0.005)


def _tree_procs(group: Path) -> list[int]:
    pids: list[int] = []
    for dirpath, _, files in os.walk(group):
        if "cgroup.procs" in files:
            pids += procs(Path(dirpath))
    return pids


def _set_frozen(freezer: Path, frozen: bool, wait_s: float = 0.5) -> bool:
    """Freeze or thaw a v1 freezer group (or a v2 group through cgroup.freeze); True when it took effect."""
    try:
        if (freezer / "freezer.state").exists():
            write(freezer / "freezer.state", "FROZEN" if frozen else "THAWED")
            if not frozen:
                return True
            deadline = time.monotonic() + wait_s
            while read(freezer / "freezer.state").strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.002)
            return True
        if (freezer / "cgroup.freeze").exists():
            write(freezer / "cgroup.freeze", "1" if frozen else "0")
            return True
    except OSError:
        pass
    return False


def remove_tree(group: Path, timeout_s: float = 1.0) -> bool:
    """rmdir a group and its sub-groups, deepest first, retrying while tasks leave; True when gone."""
    deadline = time.monotonic() + timeout_s
    while group.is_dir():
        for dirpath, _, _ in sorted(os.walk(group), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if not group.is_dir():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def sweep_stale(parent: Path, freezer_parent: Path | None = None) -> list[str]:
    """Kill and remove the groups of kernels that are no longer running under ``parent``; their names."""
    swept: list[str] = []
    try:
        names = [d.name for d in parent.iterdir() if d.is_dir() and d.name.startswith(KERNEL_PREFIX)]
    except OSError:
        return swept
    for name in names:
        if owner_alive(name):
            continue
        kill_group(parent / name, freezer_parent / name if freezer_parent is not None else None)
        remove_tree(parent / name)
        swept.append(name)
    return swept
