"""How late the kernel's own loop runs, and how long a service waited for a CPU: evidence of a busy host.

A service silent because the host was saturated (its process runnable but not scheduled, or the kernel
itself too late to read its heartbeats) is not hung. The supervisor credits that time before a verdict.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hal.sched import runqueue_wait_s

__all__ = ["LoopLag", "runqueue_wait_s"]

TICK_S = 0.1
"""How often the kernel checks its own lateness (cheap: one timer, no I/O)."""
KEEP_S = 300.0
"""How much lateness history is kept."""


class LoopLag:
    """Samples how late the kernel's event loop wakes; sums the lateness over a recent interval."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self._late: deque[tuple[float, float]] = deque()
        self.worst_s = 0.0
        self._covered_until = float("-inf")

    async def run(self) -> None:
        """Forever: sleep one tick and record how much later than asked the loop woke."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.tick_s
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            self.note(now, now - asked)

    def note(self, now: float, late_s: float) -> None:
        """Record that the loop woke ``late_s`` late at ``now`` (a stall seen by two timers counts once)."""
        late_s = min(late_s, now - self._covered_until)
        if late_s > 0.005:  # a few ms of jitter is noise
            self._covered_until = now
            self._late.append((now, late_s))
            self.worst_s = max(self.worst_s, late_s)
        while self._late and now - self._late[0][0] > KEEP_S:
            self._late.popleft()

    def since(self, t0: float) -> float:
        """Total lateness recorded after loop time ``t0``."""
        return sum(late for t, late in self._late if t > t0)
