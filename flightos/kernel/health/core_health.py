"""Per-core health: HEALTHY -> SUSPECT -> DEGRADED -> OFFLINE, with hysteresis both ways.

Mild evidence (a hot per-core zone, late heartbeats) has to persist before a core is suspected and
then degraded; severe evidence (a self-test that fails or never answers, a hung core) degrades it
at once; fatal evidence (the core is gone) takes it offline. Coming back takes a clean spell, or a
ground command.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CoreState(str, enum.Enum):
    """How far a core can be trusted with work."""

    HEALTHY = "HEALTHY"
    SUSPECT = "SUSPECT"
    DEGRADED = "DEGRADED"
    OFFLINE = "OFFLINE"


USABLE = {CoreState.HEALTHY, CoreState.SUSPECT}
"""Cores that still count as capacity (a SUSPECT core gets no new work, but is not lost yet)."""


class Weight(enum.IntEnum):
    """How strongly one observation speaks against a core (not an event's ``flightos.Severity``)."""

    MILD = 1
    SEVERE = 2
    FATAL = 3


@dataclass(frozen=True)
class Evidence:
    """One observation against a core, with a reason a person can read."""

    weight: Weight
    reason: str


@dataclass(frozen=True)
class HealthSettings:
    """Hysteresis settings, from the target's ``[cores]`` section."""

    suspect_after: int = 2
    degrade_after: int = 4
    clear_after: int = 6
    rejoin_after_s: float = 30.0


@dataclass
class CoreHealth:
    """The state machine of one core."""

    core: int
    settings: HealthSettings
    state: CoreState = CoreState.HEALTHY
    bad_streak: int = 0
    clean_streak: int = 0
    last_bad: float = 0.0
    since: float = 0.0
    reason: str = ""
    forced: CoreState | None = None
    history: list[tuple[float, str, str, str]] = field(default_factory=list)

    def observe(self, now: float, evidence: list[Evidence]) -> tuple[CoreState, CoreState, str] | None:
        """Feed one monitoring period; return (old, new, reason) when the state changes."""
        if self.forced is not None:
            return None
        worst = max((e.weight for e in evidence), default=None)
        reason = "; ".join(e.reason for e in sorted(evidence, key=lambda e: -e.weight))
        s = self.settings
        if worst is None:
            self.clean_streak += 1
            self.bad_streak = 0
            if self.state == CoreState.SUSPECT and self.clean_streak >= s.clear_after:
                return self._go(now, CoreState.HEALTHY, f"clean for {self.clean_streak} periods")
            if (
                self.state in (CoreState.DEGRADED, CoreState.OFFLINE)
                and s.rejoin_after_s > 0
                and now - self.last_bad >= s.rejoin_after_s
            ):
                return self._go(now, CoreState.HEALTHY, f"clean for {now - self.last_bad:.0f} s")
            return None
        self.clean_streak = 0
        self.bad_streak += 1
        self.last_bad = now
        if worst >= Weight.FATAL and self.state != CoreState.OFFLINE:
            return self._go(now, CoreState.OFFLINE, reason)
        if worst >= Weight.SEVERE and self.state in (CoreState.HEALTHY, CoreState.SUSPECT):
            return self._go(now, CoreState.DEGRADED, reason)
        if self.state == CoreState.HEALTHY and self.bad_streak >= s.suspect_after:
            return self._go(now, CoreState.SUSPECT, reason)
        if self.state == CoreState.SUSPECT and self.bad_streak >= s.degrade_after:
            return self._go(now, CoreState.DEGRADED, reason)
        return None

    def force(self, now: float, state: CoreState | None, reason: str) -> tuple[CoreState, CoreState, str] | None:
        """A ground command: pin the core to ``state``, or release it (None) back to HEALTHY."""
        self.forced = state
        self.bad_streak = self.clean_streak = 0
        target = state if state is not None else CoreState.HEALTHY
        if target == self.state:
            self.reason = reason
            return None
        return self._go(now, target, reason)

    def _go(self, now: float, new: CoreState, reason: str) -> tuple[CoreState, CoreState, str]:
        old, self.state, self.since, self.reason = self.state, new, now, reason
        self.bad_streak = self.clean_streak = 0
        self.history.append((now, old.value, new.value, reason))
        del self.history[:-50]
        return old, new, reason
