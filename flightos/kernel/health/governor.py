"""Thermal governor and power accounting: keep junctions below their trip point, know who spends what."""

from __future__ import annotations

from dataclasses import dataclass, field

import hal


@dataclass
class Junction:
    """The hottest chip-wide zone that has a throttle trip point, and that trip point."""

    temp_c: float | None
    trip_c: float | None
    zone: str = ""


def junction(zones: list[hal.ThermalZone], fallback_trip_c: float | None) -> Junction:
    """Pick the governing zone from a HAL reading's zones (passive trip first, then hot)."""
    best = Junction(None, fallback_trip_c)
    for z in zones:
        trip = z.trip("passive")
        trip = trip if trip is not None else z.trip("hot")
        if z.temp_c is None or (trip is None and fallback_trip_c is None):
            continue
        trip = trip if trip is not None else fallback_trip_c
        assert trip is not None
        if best.temp_c is None or (trip - z.temp_c) < ((best.trip_c or trip) - best.temp_c):
            best = Junction(z.temp_c, trip, z.name)
    return best


@dataclass
class ThermalGovernor:
    """Raises the throttle level as the junction nears its trip point; lowers it with hysteresis."""

    margin_c: float = 10.0
    hysteresis_c: float = 3.0
    max_level: int = 3
    level: int = 0

    def update(self, j: Junction, hw_throttling: bool = False) -> tuple[int, str] | None:
        """One period: return (new level, reason) when the level changes.

        ``hw_throttling`` (the firmware says it is throttling now, e.g. a Pi's get_throttled) counts
        as being at the limit: the software should shed heat before the hardware has to.
        """
        if hw_throttling and self.level < self.max_level:
            self.level += 1
            return self.level, "the hardware reports it is throttling"
        if j.temp_c is None or j.trip_c is None:
            return None
        limit = j.trip_c - self.margin_c
        if j.temp_c >= limit and self.level < self.max_level:
            self.level += 1
            return self.level, (
                f"{j.zone or 'junction'} at {j.temp_c:.1f} C, within {self.margin_c:g} C of its "
                f"{j.trip_c:g} C trip point"
            )
        if j.temp_c <= limit - self.hysteresis_c and self.level > 0:
            self.level -= 1
            return self.level, f"{j.zone or 'junction'} cooled to {j.temp_c:.1f} C"
        return None


@dataclass
class PowerAccount:
    """Energy per service: board power times the service's share of the CPU time, integrated."""

    energy_mj: dict[str, float] = field(default_factory=dict)
    board_w: float | None = None
    over_periods: int = 0

    def update(self, dt_s: float, board_w: float | None, cpu_percent: dict[str, float]) -> None:
        """Charge one period's energy to the services by their CPU share."""
        self.board_w = board_w
        total = sum(max(0.0, v) for v in cpu_percent.values())
        if board_w is None or dt_s <= 0:
            return
        for name, pct in cpu_percent.items():
            share = max(0.0, pct) / total if total > 0 else 0.0
            self.energy_mj[name] = self.energy_mj.get(name, 0.0) + board_w * dt_s * 1000.0 * share

    def over_budget(self, budget_w: float | None, periods_needed: int) -> bool:
        """True once the board has been over budget for ``periods_needed`` periods in a row."""
        if budget_w is None or self.board_w is None or self.board_w <= budget_w:
            self.over_periods = 0
            return False
        self.over_periods += 1
        return self.over_periods >= periods_needed


def board_power_w(rails_mw: dict[str, float]) -> float | None:
    """Board power from the rails: the input rail where the board has one, else the sum."""
    if not rails_mw:
        return None
    for total in ("VDD_IN", "VIN", "POM_5V_IN", "EXT5V"):
        if total in rails_mw:
            return rails_mw[total] / 1000.0
    return sum(rails_mw.values()) / 1000.0
