"""Mode policy: capacity decides the mode; shedding goes elastic, then essential, never critical."""

from __future__ import annotations

from flightos.kernel.health.modes import Candidate, Mode, capacity_mode, plan, worse

SERVICES = [
    Candidate("ground", "critical"),
    Candidate("adcs", "critical"),
    Candidate("hk", "essential"),
    Candidate("store", "essential"),
    Candidate("sar", "elastic"),
    Candidate("ml", "elastic"),
]


def test_losing_cores_lowers_the_mode() -> None:
    """4 of 4 is NOMINAL, 2-3 is DEGRADED, 1 (or none) is SAFE."""
    assert [capacity_mode(n, 4, 1) for n in (4, 3, 2, 1, 0)] == [
        Mode.NOMINAL,
        Mode.DEGRADED,
        Mode.DEGRADED,
        Mode.SAFE,
        Mode.SAFE,
    ]
    assert worse(Mode.NOMINAL, Mode.SAFE) == Mode.SAFE


def test_safe_keeps_only_critical() -> None:
    """SAFE runs the critical services and sheds the rest, saying why."""
    run, shed = plan(Mode.SAFE, 1, SERVICES, services_per_core=4)
    assert run == {"ground", "adcs"}
    assert set(shed) == {"hk", "store", "sar", "ml"} and "SAFE" in shed["sar"]


def test_capacity_sheds_elastic_before_essential() -> None:
    """With room for 3 services the two critical and one essential run; elastic go first."""
    run, shed = plan(Mode.DEGRADED, 1, SERVICES, services_per_core=3)
    assert run == {"ground", "adcs", "hk"}
    assert set(shed) == {"store", "sar", "ml"}


def test_power_sheds_least_critical_first_never_critical() -> None:
    """Power shedding drops elastic first; even a large demand leaves critical services running."""
    run, shed = plan(Mode.NOMINAL, 4, SERVICES, services_per_core=4, power_shed=2)
    assert run == {"ground", "adcs", "hk", "store"} and shed["ml"] == "power budget exceeded"
    run, _ = plan(Mode.NOMINAL, 4, SERVICES, services_per_core=4, power_shed=10)
    assert run == {"ground", "adcs"}
