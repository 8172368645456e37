"""Affinity applies to every thread of a real child process, not only its main thread."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hal
from hal.affinity import get_process_affinity, set_process_affinity, thread_affinities

CHILD = r"""
import sys, threading
stop = threading.Event()
threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
churn = len(sys.argv) > 1
if churn:
    def spin():
        while not stop.is_set():
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
    threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
stop.set()
"""

CPUS = sorted(os.sched_getaffinity(0))


def _spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"  # blocks until the child's threads run
    return proc


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    proc = _spawn()
    yield proc
    proc.communicate("\n", timeout=10)


def _status_cpus(pid: int, tid: int) -> frozenset[int]:
    from hal.backends.linux.topology import parse_cpu_list

    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return frozenset(parse_cpu_list(line.split(":", 1)[1]))
    raise AssertionError("no Cpus_allowed_list")


@pytest.mark.skipif(len(CPUS) < 2, reason="needs at least 2 usable CPUs")
def test_every_thread_is_pinned(child: subprocess.Popen[str]) -> None:
    """After set_process_affinity all four threads of the child run only on the chosen CPU."""
    target = CPUS[-1]
    set_process_affinity(child.pid, [target])
    per_thread = thread_affinities(child.pid)
    assert len(per_thread) >= 4
    assert set(per_thread.values()) == {frozenset({target})}
    assert {_status_cpus(child.pid, tid) for tid in per_thread} == {frozenset({target})}
    assert get_process_affinity(child.pid) == frozenset({target})
    set_process_affinity(child.pid, CPUS)
    assert set(thread_affinities(child.pid).values()) == {frozenset(CPUS)}


def test_threads_exiting_mid_walk_are_tolerated() -> None:
    """Pinning a process that creates and ends threads all the time never fails."""
    proc = _spawn("churn")
    try:
        for i in range(20):
            set_process_affinity(proc.pid, [CPUS[i % len(CPUS)]])
    finally:
        proc.communicate("\n", timeout=10)


def test_unusable_cpu_is_a_clear_error(child: subprocess.Popen[str]) -> None:
    """Pinning to a CPU that does not exist raises HalError saying no CPU is usable."""
    with pytest.raises(hal.HalError, match="none of them is usable") as info:
        set_process_affinity(child.pid, [4095])
    allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    assert f"this process may use CPUs {allowed}; online: " in str(info.value)
    with pytest.raises(hal.HalError, match="empty"):
        set_process_affinity(child.pid, [])


def test_gone_process_is_a_clear_error() -> None:
    """A pid that has exited gives HalError('does not exist'), not FileNotFoundError."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    with pytest.raises(hal.HalError, match="does not exist"):
        set_process_affinity(proc.pid, CPUS)
    with pytest.raises(hal.HalError, match="does not exist"):
        thread_affinities(proc.pid)
