"""cpusets below the process's own cgroup (v2 under a systemd unit, v1 where only v1 has cpuset), and why not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hal
from hal import cpuset
from hal.testing.trees import write

REAL = cpuset.probe("/")
CG = "/sys/fs/cgroup"


def _v2_unit(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    """A board booted with the unified hierarchy, this process in flightos.service (Delegate=yes)."""
    write(
        root,
        "/proc/self/mountinfo",
        "24 1 179:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
        "28 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
    )
    write(root, "/proc/self/cgroup", "0::/system.slice/flightos.service\n")
    write(root, f"{CG}/cgroup.controllers", "cpuset cpu io memory pids\n")
    write(root, f"{CG}/cgroup.subtree_control", "cpuset cpu io memory pids\n")
    unit = f"{CG}/system.slice/flightos.service"
    write(root, f"{unit}/cgroup.controllers", controllers + "\n")
    write(root, f"{unit}/cgroup.subtree_control", "\n")
    write(root, f"{unit}/cgroup.type", "domain\n")
    write(root, f"{unit}/cgroup.procs", "4242\n")
    return root


def _ci_container(root: Path) -> Path:
    """This machine and CI (/work/shared/reference/dev-machine-cgroups.md): v1 hierarchies, v2 with hugetlb only."""
    lines = ["31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755"]
    for n, ctrl in enumerate(["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"]):
        lines.append(f"{32 + n} 31 0:{29 + n} / /sys/fs/cgroup/{ctrl} rw,relatime - cgroup cgroup rw,{ctrl}")
    lines.append("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw")
    write(root, "/proc/self/mountinfo", "\n".join(lines) + "\n")
    write(
        root,
        "/proc/self/cgroup",
        "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/840210b7\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n",
    )
    write(root, f"{CG}/unified/cgroup.controllers", "hugetlb\n")
    write(root, f"{CG}/unified/cgroup.subtree_control", "\n")
    write(root, f"{CG}/cpuset/cgroup.procs", "1\n4242\n")
    write(root, f"{CG}/cpuset/cpuset.cpus", "0-3\n")
    write(root, f"{CG}/cpuset/cpuset.mems", "0\n")
    return root


def _jetpack5_hybrid(root: Path) -> Path:
    """JetPack 5 (systemd hybrid): v2 at /sys/fs/cgroup/unified without controllers, cpuset on v1, in a container
    whose v1 cpuset root is /docker/abc (the mounted subtree is stripped from /proc/self/cgroup's path)."""
    write(
        root,
        "/proc/self/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n"
        "33 25 0:29 /docker/abc /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup "
        "rw,cpuset\n",
    )
    write(
        root,
        "/proc/self/cgroup",
        "6:cpuset:/docker/abc\n1:name=systemd:/system.slice/flightos.service\n0::/system.slice/flightos.service\n",
    )
    write(root, f"{CG}/unified/system.slice/flightos.service/cgroup.controllers", "\n")
    write(root, f"{CG}/cpuset/cgroup.procs", "4242\n")
    write(root, f"{CG}/cpuset/cpuset.cpus", "0-5\n")
    write(root, f"{CG}/cpuset/cpuset.mems", "0\n")
    return root


def test_v2_groups_are_made_inside_the_unit_not_at_the_root(tmp_path: Path) -> None:
    """Under flightos.service the group lives in the unit's delegated subtree; the unit's processes move to
    its 'kernel' leaf first (a v2 group with processes cannot enable controllers), and return on remove."""
    _v2_unit(tmp_path)
    support = cpuset.probe(str(tmp_path))
    unit = tmp_path / CG.lstrip("/") / "system.slice/flightos.service"
    assert (support.available, support.version, support.base) == (True, "v2", str(unit))
    group = cpuset.CpusetGroup.create("camera", [0, 1, 3], root=str(tmp_path))
    assert group.path == unit / "cpusets/camera"
    assert (unit / "kernel/cgroup.procs").read_text() == "4242"
    assert (unit / "cgroup.subtree_control").read_text() == "+cpuset"
    assert (unit / "cpusets/cgroup.subtree_control").read_text() == "+cpuset"
    assert (group.path / "cpuset.cpus").read_text() == "0-1,3" and group.cpus() == frozenset({0, 1, 3})
    assert not (tmp_path / CG.lstrip("/") / "cpusets").exists()  # nothing at the cgroup root
    assert (tmp_path / CG.lstrip("/") / "cgroup.subtree_control").read_text() == "cpuset cpu io memory pids\n"
    group.add(1234)
    assert group.pids() == [1234]
    with pytest.raises(hal.HalError):
        group.set_cpus([])


@pytest.mark.parametrize("layout", [_ci_container, _jetpack5_hybrid], ids=["ci-container", "jetpack5-hybrid"])
def test_v1_cpuset_is_used_where_only_v1_has_it(layout: object, tmp_path: Path) -> None:
    """Where v2 offers no cpuset, the v1 cpuset group of this process is used; new v1 groups get their
    parent's CPUs and memory nodes before the requested CPUs (v1 refuses tasks in an empty cpuset)."""
    assert callable(layout)
    layout(tmp_path)
    support = cpuset.probe(str(tmp_path))
    base = tmp_path / CG.lstrip("/") / "cpuset"
    assert (support.available, support.version, support.base, support.mount) == (True, "v1", str(base), f"{CG}/cpuset")
    group = cpuset.CpusetGroup.create("camera", [1, 2], root=str(tmp_path))
    assert group.path == base / "cpusets/camera" and group.home == base
    assert (base / "cpusets/cpuset.mems").read_text() == "0" and (group.path / "cpuset.mems").read_text() == "0"
    assert (group.path / "cpuset.cpus").read_text() == "1-2"
    write(tmp_path, f"{CG}/cpuset/cpusets/camera/cpuset.effective_cpus", "1-2\n")
    assert group.effective_cpus() == frozenset({1, 2})  # v1 names it cpuset.effective_cpus


def test_no_cpuset_anywhere_says_why(tmp_path: Path) -> None:
    """A v2 unit without the cpuset controller and no v1 cpuset: the reason names the group and Delegate=yes."""
    _v2_unit(tmp_path, controllers="memory pids")
    support = cpuset.probe(str(tmp_path))
    assert not support.available
    assert "cpuset controller is not available in /sys/fs/cgroup/system.slice/flightos.service" in support.reason
    assert "(controllers: memory pids" in support.reason and "Delegate=yes" in support.reason
    assert "no v1 cpuset hierarchy either" in support.reason
    with pytest.raises(hal.HalUnsupported, match="cpusets unavailable"):
        cpuset.CpusetGroup.create("svc", [0], root=str(tmp_path))
    assert not (tmp_path / CG.lstrip("/") / "system.slice/flightos.service/kernel").exists()


def test_no_cgroup_mounted_is_reported(tmp_path: Path) -> None:
    """A tree with no cgroup mounts at all says so."""
    write(tmp_path, "/proc/self/mountinfo", "24 1 179:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n")
    support = cpuset.probe(str(tmp_path))
    assert not support.available and "no cgroup v2 hierarchy is mounted" in support.reason


@pytest.mark.skipif(not REAL.available, reason=f"no writable cpuset group for this process: {REAL.reason}")
def test_real_cpuset_pins_a_child() -> None:
    """On a machine with a writable cpuset (v2 delegation, or v1 as root) a child moved into a group runs only
    on its CPUs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE, text=True
    )
    group = cpuset.CpusetGroup.create("hal-test", [0])
    try:
        group.add(proc.pid)
        assert group.effective_cpus() == frozenset({0})
        assert hal.affinity.get_process_affinity(proc.pid) == frozenset({0})
    finally:
        proc.communicate("\n", timeout=10)
        group.remove()
    assert not group.path.exists()
