"""Poisson fault processes whose event times do not depend on how the caller chops up time."""

from __future__ import annotations

import random


class PoissonProcess:
    """A Poisson process with a piecewise-constant rate, drawn from its own random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._budget = rng.expovariate(1.0)

    def advance(self, rate_per_s: float, t0: float, t1: float) -> list[float]:
        """Event times in (t0, t1] at the given constant rate."""
        times: list[float] = []
        if rate_per_s <= 0 or t1 <= t0:
            return times
        t = t0
        while True:
            need = self._budget / rate_per_s
            if t + need > t1:
                self._budget -= rate_per_s * (t1 - t)
                return times
            t += need
            times.append(t)
            self._budget = self.rng.expovariate(1.0)


def stream(seed: int, name: str) -> random.Random:
    """An independent, reproducible random stream for one purpose."""
    return random.Random(f"flightos-sim:{seed}:{name}")
