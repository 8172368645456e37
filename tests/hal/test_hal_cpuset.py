"""cgroup-v2 cpusets: used when really available, and a clear reason when not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hal
from hal import cpuset
from hal.testing.trees import write

REAL = cpuset.probe("/")


def _fake_v2(root: Path, controllers: str) -> Path:
    write(root, "/proc/self/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n")
    write(root, "/sys/fs/cgroup/cgroup.controllers", controllers + "\n")
    write(root, "/sys/fs/cgroup/cgroup.subtree_control", "\n")
    return root


def test_no_v2_mount_is_reported(tmp_path: Path) -> None:
    """A v1-only machine is told 'no cgroup v2 hierarchy', and creating a group says so."""
    write(tmp_path, "/proc/self/mounts", "cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n")
    support = cpuset.probe(str(tmp_path))
    assert not support.available and "no cgroup v2" in support.reason
    with pytest.raises(hal.HalUnsupported, match="no cgroup v2"):
        cpuset.CpusetGroup.create("svc", [0], root=str(tmp_path))


def test_v2_without_cpuset_controller_is_reported(tmp_path: Path) -> None:
    """A v2 mount whose controllers lack cpuset is reported with the list it has."""
    support = cpuset.probe(str(_fake_v2(tmp_path, "memory pids")))
    assert not support.available
    assert "cpuset controller is not available" in support.reason and "memory pids" in support.reason


def test_group_files_are_written(tmp_path: Path) -> None:
    """Creating a group enables +cpuset on each level and writes cpuset.cpus and cgroup.procs."""
    _fake_v2(tmp_path, "cpuset cpu memory")
    group = cpuset.CpusetGroup.create("camera", [0, 1, 3], root=str(tmp_path))
    base = tmp_path / "sys/fs/cgroup"
    assert (base / "cgroup.subtree_control").read_text() == "+cpuset"
    assert (base / "flightos/cgroup.subtree_control").read_text() == "+cpuset"
    assert (base / "flightos/camera/cpuset.cpus").read_text() == "0-1,3"
    group.add(1234)
    assert (base / "flightos/camera/cgroup.procs").read_text() == "1234"
    assert group.cpus() == frozenset({0, 1, 3})
    with pytest.raises(hal.HalError):
        group.set_cpus([])


@pytest.mark.skipif(not REAL.available, reason=f"no usable cgroup-v2 cpuset here: {REAL.reason}")
def test_real_cpuset_pins_a_child() -> None:
    """On a machine with cpuset delegation a child moved into a group runs only on its CPUs."""
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
