"""How much slower than the reference machine this board runs Python, measured once at start.

Timeouts that bound CPU work (self-test answers, heartbeat silence, the start-up grace) are
multiplied by this factor, so a slow or CPU-confined board is not declared broken for being slow.
A target can set it instead (``health.speed_factor``); 0 means measure.
"""

from __future__ import annotations

import time

REFERENCE_S = 0.024
"""Wall time of one round of the work on the reference machine (x86-64, 2 cores, Python 3.11)."""
SLOW_FROM = 1.5
"""A board measured within this factor of the reference keeps the limits as configured (they have the margin)."""
MAX_FACTOR = 20.0
"""Beyond this the board is too slow to run flightos; the factor is capped so limits stay finite."""


def _work() -> int:
    """A fixed amount of interpreter work: dict, int and string operations like a service's loop."""
    d: dict[int, str] = {}
    total = 0
    for i in range(60_000):
        d[i & 1023] = str(i)
        total += len(d[i & 1023]) * (i % 7)
    return total


def benchmark(rounds: int = 4) -> float:
    """Wall seconds per round of the fixed work, over ``rounds`` rounds in a row.

    Wall time, not CPU time: a CPU quota (about 100 ms periods) or a busy neighbour has to show up, so
    the rounds together run longer than one quota period.
    """
    t0 = time.perf_counter()
    for _ in range(rounds):
        _work()
    return (time.perf_counter() - t0) / rounds


def measure() -> float:
    """The board's speed factor: 1.0 up to ``SLOW_FROM`` times the reference machine's time, larger when slower."""
    factor = benchmark() / REFERENCE_S
    return 1.0 if factor < SLOW_FROM else round(min(MAX_FACTOR, factor), 2)


def resolve(configured: float) -> float:
    """The configured factor, or a measured one when it is 0."""
    return configured if configured > 0 else measure()
