"""Thermal governor and power accounting."""

from __future__ import annotations

import hal
from flightos.kernel.health.governor import Junction, PowerAccount, ThermalGovernor, board_power_w, junction


def zone(name: str, temp: float | None, **trips: float) -> hal.ThermalZone:
    return hal.ThermalZone(name, temp, [hal.TripPoint(k, v) for k, v in trips.items()])


def test_junction_is_the_zone_closest_to_its_trip() -> None:
    """The governing zone is the one with the least margin; zones without trips are ignored."""
    j = junction(
        [zone("radiator", 40.0), zone("cpu", 80.0, passive=95.0, critical=110.0), zone("gpu", 70.0, passive=100.0)],
        None,
    )
    assert (j.zone, j.temp_c, j.trip_c) == ("cpu", 80.0, 95.0)
    assert junction([zone("soc", 50.0)], 85.0).trip_c == 85.0


def test_governor_steps_up_near_the_trip_and_down_with_hysteresis() -> None:
    """Within the margin the level climbs one step a period; it eases only 3 C below the margin."""
    g = ThermalGovernor(margin_c=10.0, hysteresis_c=3.0, max_level=3)
    hot, warm, cool = Junction(86.0, 95.0), Junction(84.0, 95.0), Junction(81.0, 95.0)
    assert [g.update(hot) and g.level for _ in range(4)] == [1, 2, 3, None]
    assert g.update(warm) is None and g.level == 3  # inside the hysteresis band: hold
    assert g.update(cool) is not None and g.level == 2


def test_hardware_throttling_raises_the_level_even_when_cool() -> None:
    """A board that says it is throttling gets its elastic work throttled, whatever the zone reads."""
    g = ThermalGovernor()
    change = g.update(Junction(40.0, 95.0), hw_throttling=True)
    assert change is not None and g.level == 1 and "hardware" in change[1]


def test_energy_follows_cpu_share_and_budget_needs_persistence() -> None:
    """A service using 3/4 of the CPU is charged 3/4 of the energy; the budget trips after N periods."""
    p = PowerAccount()
    p.update(1.0, 2.0, {"a": 30.0, "b": 10.0})
    assert round(p.energy_mj["a"]) == 1500 and round(p.energy_mj["b"]) == 500
    assert [p.over_budget(1.5, 3) for _ in range(3)] == [False, False, True]
    p.update(1.0, 1.0, {"a": 1.0})
    assert p.over_budget(1.5, 3) is False and p.over_periods == 0
    assert board_power_w({"VDD_IN": 5000.0, "VDD_CPU": 1000.0}) == 5.0
    assert board_power_w({"VDD_CORE": 200.0, "VDD_UNCORE": 500.0}) == 0.7
