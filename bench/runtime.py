"""Real runtimes for the figures: started, and stopped with a bounded wait whose length is recorded."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench.report import Row
from bench.stats import median
from flightos.testing.runtime import RuntimeProcess

STOP_TIMEOUT_S = 2.0
"""How long a runtime gets from SIGTERM to exit before it is SIGKILLed (by its pid)."""


@dataclass
class Stop:
    """How one runtime's stop went."""

    seconds: float
    code: int


STOPS: list[Stop] = []


@contextlib.asynccontextmanager
async def running(start_timeout: float = 30.0, **kwargs: Any) -> AsyncIterator[RuntimeProcess]:
    """A started RuntimeProcess; on exit SIGTERM, wait at most STOP_TIMEOUT_S, then clean up."""
    rt = RuntimeProcess(**kwargs)
    try:
        await rt.start(start_timeout)
        try:
            yield rt
        except Exception:
            print(f"--- runtime log ({rt.log_path}) ---\n{rt.log_tail(60)}")
            raise
    finally:
        t0 = time.monotonic()
        code = await rt.stop(timeout=STOP_TIMEOUT_S)
        STOPS.append(Stop(time.monotonic() - t0, code))
        rt.cleanup()


def shutdown_row() -> Row | None:
    """An info row on how the runtimes of this run stopped (None if none ran)."""
    if not STOPS:
        return None
    killed = [s for s in STOPS if s.code != 0]
    note = (
        f"{len(STOPS)} runtimes; {len(killed)} did not exit within {STOP_TIMEOUT_S:g} s of SIGTERM "
        f"(exit codes {sorted({s.code for s in killed})}) and were killed"
        if killed
        else f"{len(STOPS)} runtimes, all exited cleanly"
    )
    return Row(
        "runtime shutdown: SIGTERM -> exit (median)",
        median([s.seconds * 1000 for s in STOPS]),
        "ms",
        group="lifecycle",
        note=note,
        samples={"stops": [{"seconds": round(s.seconds, 3), "code": s.code} for s in STOPS]},
    )
