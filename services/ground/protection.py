"""Link protection: what the ground service does with input it cannot trust.

Unauthenticated or malformed input changes nothing about the link. Its answers are rate-limited and
never larger than what was received (so the spacecraft is no reflector), and its rejections are
counted exactly but reported as one event per reason per interval, never one event per packet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

Source = tuple[str, int]
MAX_SOURCES = 1024
"""Distinct sources remembered per reason and interval (beyond it the count says "1024+")."""


class Bucket:
    """A token bucket of ``rate`` tokens per second holding at most ``burst``; time from an injected clock."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
        self.rate, self.burst, self._clock = float(rate), float(burst), clock
        self._tokens = self.burst
        self._last = clock()

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now
        if self._tokens < n:
            return False
        self._tokens -= n
        return True


@dataclass
class Summary:
    """What one report of a reason says: how many, from how many sources, over how long, and one example."""

    kind: str
    reason: str
    count: int
    sources: int
    seconds: float
    example: str
    source: str
    first: bool
    """True for the report of the first rejection after a quiet interval (sent at once)."""

    def text(self, one: str, many: str) -> str:
        """The event text, e.g. "412 telecommands rejected (AUTH_BAD_MAC) from 3 sources in 10 s; last: …"."""
        if self.first:
            return f"{one} ({self.reason}) from {self.source}: {self.example}"
        more = "+" if self.sources >= MAX_SOURCES else ""
        plural = "" if self.sources == 1 and not more else "s"
        return (
            f"{self.count} {one if self.count == 1 else many} ({self.reason}) from {self.sources}{more} "
            f"source{plural} in {self.seconds:.0f} s; last from {self.source}: {self.example}"
        )


@dataclass
class _Window:
    started: float
    count: int = 0
    sources: set[Source | None] = field(default_factory=set)
    example: str = ""
    source: str = ""


class RejectionLog:
    """Rejections grouped by (kind, reason): the first after a quiet interval is reported at once, the rest
    as one summary per ``interval_s`` while they keep coming. ``note`` and ``due`` return what to report."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a finite number > 0, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self._clock = clock
        self._open: dict[tuple[str, str], _Window] = {}

    def note(self, kind: str, reason: str, source: Source | None, example: str) -> Summary | None:
        """Count one rejection; a Summary to report now if it is the first of its reason in a while."""
        key, now = (kind, reason), self._clock()
        window = self._open.get(key)
        where = f"{source[0]}:{source[1]}" if source else "on board"
        if window is None:
            self._open[key] = _Window(now)
            return Summary(kind, reason, 1, 1, 0.0, example, where, first=True)
        window.count += 1
        if len(window.sources) < MAX_SOURCES:
            window.sources.add(source)
        window.example, window.source = example, where
        return None

    def due(self) -> list[Summary]:
        """Summaries of the reasons whose interval ended with rejections in it; quiet reasons are forgotten."""
        now, out = self._clock(), []
        for key, window in list(self._open.items()):
            if now - window.started < self.interval_s:
                continue
            if window.count == 0:
                del self._open[key]
                continue
            out.append(
                Summary(
                    key[0],
                    key[1],
                    window.count,
                    len(window.sources),
                    now - window.started,
                    window.example,
                    window.source,
                    first=False,
                )
            )
            self._open[key] = _Window(now)
        return out


REQUEST_SIZE: ContextVar[int | None] = ContextVar("ground_request_size", default=None)
"""Bytes of the packet the current task is answering (set per telecommand task; None when not answering one)."""
