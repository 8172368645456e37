"""What the Linux scheduler says about a process: time it was runnable but waiting for a CPU.

A board that is merely busy (the host saturated by other work) is not a hung one: clocks and verdicts
that judge liveness subtract this wait (``/proc/PID/schedstat``, field 2, nanoseconds).
"""

from __future__ import annotations

import os
import time


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but not running; 0 if the kernel does not say."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def runnable_clock() -> float:
    """A monotonic clock that stands still while this process waits for a CPU (seconds)."""
    return time.monotonic() - runqueue_wait_s(os.getpid())
