"""Budgets of a job and what it used: CPU-seconds, energy, downlink bytes, wall time.

Energy is charged from CPU time and the board's power (``tm.kernel.health`` ``power_w``):

    energy_mj += power_w * cpu_delta_s / n_cpus * 1000

where ``n_cpus`` is the number of CPUs the board's cores run on. A job that keeps one of two CPUs
busy for a second is charged half of a second of the board's power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from flightos import BadArguments

KEYS = ("cpu_s", "energy_mj", "downlink_bytes", "deadline_s")
UNITS = {"cpu_s": "CPU-s", "energy_mj": "mJ", "downlink_bytes": "B", "deadline_s": "s"}
DEFAULTS: dict[str, float] = {"cpu_s": 60.0, "energy_mj": 60_000.0, "downlink_bytes": 1 << 20, "deadline_s": 600.0}
"""What a submission that leaves a key out gets (target options ``default_<key>`` override them)."""
LIMITS: dict[str, float] = {
    "cpu_s": 3600.0,
    "energy_mj": 3_600_000.0,
    "downlink_bytes": 64 << 20,
    "deadline_s": 86_400.0,
}
"""The most a submission may ask for (target options ``max_<key>`` override them)."""


@dataclass(frozen=True)
class Budget:
    """What a job may consume before it is stopped."""

    cpu_s: float
    energy_mj: float
    downlink_bytes: int
    deadline_s: float

    @classmethod
    def parse(
        cls,
        raw: dict[str, Any] | None,
        defaults: dict[str, float] | None = None,
        limits: dict[str, float] | None = None,
    ) -> Budget:
        """Check a submitted budget; missing keys take defaults; raise BadArguments naming every problem."""
        defaults = {**DEFAULTS, **(defaults or {})}
        limits = {**LIMITS, **(limits or {})}
        raw = raw or {}
        problems = [f"unknown budget key {k!r} (known: {', '.join(KEYS)})" for k in raw if k not in KEYS]
        values: dict[str, float] = {}
        for key in KEYS:
            v = raw.get(key, defaults[key])
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                problems.append(f"{key}: expected a number, got {v!r}")
                continue
            if v < 0 or (v == 0 and key != "downlink_bytes"):
                problems.append(f"{key}: expected a number > 0, got {v!r}")
            elif v > limits[key]:
                problems.append(f"{key}: {v} is over this service's limit of {limits[key]:g} {UNITS[key]}")
            values[key] = v
        if problems:
            raise BadArguments("budget: " + "; ".join(problems), problems=problems)
        return cls(
            cpu_s=float(values["cpu_s"]),
            energy_mj=float(values["energy_mj"]),
            downlink_bytes=int(values["downlink_bytes"]),
            deadline_s=float(values["deadline_s"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """As stored in the ledger and shown to the ground."""
        return asdict(self)


@dataclass
class Usage:
    """What a job has consumed so far (metered by the jobs service, never reported by the job)."""

    cpu_s: float = 0.0
    energy_mj: float = 0.0
    downlink_bytes: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As the ledger stores it: to the microsecond and the microjoule."""
        return {
            "cpu_s": round(self.cpu_s, 6),
            "energy_mj": round(self.energy_mj, 6),
            "downlink_bytes": int(self.downlink_bytes),
            "wall_s": round(self.wall_s, 6),
        }


def energy_increment_mj(power_w: float, cpu_delta_s: float, n_cpus: int) -> float:
    """Energy charged for ``cpu_delta_s`` CPU-seconds on a board drawing ``power_w`` over ``n_cpus`` CPUs."""
    return max(0.0, power_w) * max(0.0, cpu_delta_s) / max(1, n_cpus) * 1000.0


def over_budget(budget: Budget, usage: Usage, age_s: float) -> tuple[str, str] | None:
    """The first budget exceeded, as (key, reason naming it), or None. ``age_s`` counts from submission."""
    if age_s > budget.deadline_s:
        return "deadline_s", f"deadline_s: {age_s:.2f} s since submission, deadline {budget.deadline_s:g} s"
    if usage.cpu_s > budget.cpu_s:
        return "cpu_s", f"cpu_s: {usage.cpu_s:.3f} CPU-s used, budget {budget.cpu_s:g} CPU-s"
    if usage.energy_mj > budget.energy_mj:
        return "energy_mj", f"energy_mj: {usage.energy_mj:.1f} mJ used, budget {budget.energy_mj:g} mJ"
    if usage.downlink_bytes > budget.downlink_bytes:
        return "downlink_bytes", (
            f"downlink_bytes: {usage.downlink_bytes} B queued for downlink, budget {budget.downlink_bytes} B"
        )
    return None
