"""Fixed-rate execution of ``@periodic`` methods, with overruns counted instead of drift."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("flightos.service")


@dataclass
class PeriodicStats:
    """Counts for one periodic task, reported in heartbeats."""

    runs: int = 0
    overruns: int = 0
    errors: int = 0


async def run_periodic(
    name: str, hz: Callable[[], float], fn: Callable[[], Awaitable[None]], stats: PeriodicStats
) -> None:
    """Call ``fn`` on the grid start + k/hz; a run that passes a slot counts each missed slot.

    ``hz`` is read every cycle, so a rate held in a parameter takes effect at the next run.
    """
    loop = asyncio.get_running_loop()
    next_t = loop.time()
    while True:
        period = 1.0 / max(1e-6, hz())
        try:
            await fn()
            stats.runs += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            stats.errors += 1
            if stats.errors <= 5 or stats.errors % 100 == 0:
                log.exception("service.periodic_failed", task=name, errors=stats.errors)
        next_t += period
        now = loop.time()
        if now > next_t:
            missed = int((now - next_t) / period) + 1
            stats.overruns += missed
            next_t += missed * period
        await asyncio.sleep(max(0.0, next_t - loop.time()))


def monotonic_ms() -> float:
    """Monotonic clock in milliseconds."""
    return time.monotonic() * 1000.0
