"""Spacecraft modes and the shedding plan: NOMINAL -> DEGRADED -> SAFE as usable capacity shrinks.

Pure policy, no I/O: given the usable cores and the services, say which mode holds and which
services run. Critical services run until the last usable core; essential ones are shed after the
elastic ones; SAFE keeps only critical services (the ground link is one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

RANK = {"critical": 0, "essential": 1, "elastic": 2}


class Mode(str, enum.Enum):
    """The runtime's mode, raised and lowered by capacity, power and ground commands."""

    NOMINAL = "NOMINAL"
    DEGRADED = "DEGRADED"
    SAFE = "SAFE"


ORDER = [Mode.NOMINAL, Mode.DEGRADED, Mode.SAFE]


def capacity_mode(usable: int, total: int, safe_at_usable_cores: int) -> Mode:
    """The mode the cores alone call for."""
    if usable <= safe_at_usable_cores:
        return Mode.SAFE
    if usable < total:
        return Mode.DEGRADED
    return Mode.NOMINAL


def worse(a: Mode, b: Mode) -> Mode:
    """The more restrictive of two modes."""
    return a if ORDER.index(a) >= ORDER.index(b) else b


@dataclass(frozen=True)
class Candidate:
    """A service as the plan sees it."""

    name: str
    criticality: str


def plan(
    mode: Mode, usable: int, services: list[Candidate], services_per_core: int, power_shed: int = 0
) -> tuple[set[str], dict[str, str]]:
    """Which services run, and for each one shed, why.

    Services are kept most critical first (then by name, for a stable plan) up to the capacity of
    the usable cores; ``power_shed`` more are dropped, least critical first, never a critical one.
    """
    ordered = sorted(services, key=lambda s: (RANK.get(s.criticality, 1), s.name))
    keep: list[Candidate] = []
    shed: dict[str, str] = {}
    capacity = max(0, usable) * services_per_core
    for s in ordered:
        if s.criticality == "critical":
            keep.append(s)  # until the last usable core: never shed for capacity or power
        elif mode == Mode.SAFE:
            shed[s.name] = "SAFE mode keeps only critical services"
        elif len(keep) >= capacity:
            shed[s.name] = f"capacity: {usable} usable core(s) carry {capacity} services"
        else:
            keep.append(s)
    for s in reversed([k for k in keep if k.criticality != "critical"][-power_shed:] if power_shed else []):
        keep.remove(s)
        shed[s.name] = "power budget exceeded"
    return {s.name for s in keep}, shed
