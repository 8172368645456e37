"""When to restart a service: backoff with jitter, reset after a healthy spell, intensity limit."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from flightos.config.schema import RestartConfig

RestartSettings = RestartConfig
"""The ``[restart]`` section of a target: the typed view the loader builds, with the schema's defaults."""


@dataclass
class RestartTracker:
    """Remembers one service's restarts and decides the next delay or that it has FAILED."""

    settings: RestartSettings
    rng: random.Random = field(default_factory=random.Random)
    consecutive: int = 0
    history: deque[float] = field(default_factory=deque)

    def next_delay(self, now: float, healthy_for: float) -> float | None:
        """Delay before the next restart, or None when the intensity limit is exceeded (FAILED).

        The first restart is immediate; then 1 s doubling to the cap, ±jitter. A service that
        stayed healthy for ``reset_after_s`` starts again from an immediate restart.
        """
        s = self.settings
        if healthy_for >= s.reset_after_s:
            self.consecutive = 0
        while self.history and now - self.history[0] > s.window_s:
            self.history.popleft()
        if len(self.history) >= s.max_restarts:
            return None
        self.history.append(now)
        n = self.consecutive
        self.consecutive += 1
        if n == 0:
            return 0.0
        base = min(s.backoff_max_s, s.backoff_initial_s * (2 ** (n - 1)))
        return self._jittered(base, s.backoff_max_s)

    def escalated_delay(self) -> float:
        """Delay of the next retry of a critical service past the intensity limit (it never gives up)."""
        s = self.settings
        self.consecutive += 1
        return self._jittered(s.critical_retry_s, s.critical_retry_s)

    def forget(self) -> None:
        """Start afresh, as after a reboot or an operator's start: no history, next restart immediate."""
        self.history.clear()
        self.consecutive = 0

    def _jittered(self, base: float, cap: float) -> float:
        jitter = 1.0 + self.settings.backoff_jitter * (2 * self.rng.random() - 1)
        return float(max(0.0, min(cap * (1 + self.settings.backoff_jitter), base * jitter)))
