"""Core health state machine: hysteresis both ways, severe and fatal evidence, ground commands."""

from __future__ import annotations

from flightos.kernel.health.core_health import CoreHealth, CoreState, Evidence, HealthSettings, Weight

MILD = [Evidence(Weight.MILD, "hot")]
SEVERE = [Evidence(Weight.SEVERE, "self-test: no answer")]
FATAL = [Evidence(Weight.FATAL, "core failed")]


def run(h: CoreHealth, periods: list[list[Evidence]], t0: float = 0.0, dt: float = 0.5) -> list[str]:
    out = []
    for i, ev in enumerate(periods):
        change = h.observe(t0 + i * dt, ev)
        out.append(change[1].value if change else "-")
    return out


def test_mild_evidence_must_persist_to_suspect_then_degrade() -> None:
    """Two bad periods make SUSPECT, four more make DEGRADED."""
    h = CoreHealth(0, HealthSettings(suspect_after=2, degrade_after=4))
    assert run(h, [MILD] * 6) == ["-", "SUSPECT", "-", "-", "-", "DEGRADED"]


def test_flapping_at_the_threshold_never_degrades() -> None:
    """Bad, clean, bad, clean …: at most SUSPECT, never a storm of changes."""
    h = CoreHealth(0, HealthSettings(suspect_after=2, degrade_after=4, clear_after=6))
    changes = run(h, [MILD, [], MILD, MILD, [], MILD, [], MILD, MILD, []] * 5)
    assert "DEGRADED" not in changes
    assert changes.count("SUSPECT") == 1 and changes.count("HEALTHY") == 0


def test_suspect_clears_after_a_clean_spell() -> None:
    """Six clean periods bring a SUSPECT core back to HEALTHY."""
    h = CoreHealth(0, HealthSettings(suspect_after=1, clear_after=6))
    assert run(h, [MILD] + [[]] * 6)[-1] == "HEALTHY"


def test_severe_degrades_at_once_and_rejoins_after_clean_time() -> None:
    """A failed self-test degrades immediately; 30 s clean brings it back."""
    h = CoreHealth(0, HealthSettings(rejoin_after_s=30.0))
    assert h.observe(0.0, SEVERE) is not None and h.state == CoreState.DEGRADED
    assert h.observe(20.0, []) is None
    change = h.observe(30.5, [])
    assert change is not None and change[1] == CoreState.HEALTHY


def test_fatal_goes_offline_and_stays_while_evidence_lasts() -> None:
    """A failed core is OFFLINE for as long as it is reported failed."""
    h = CoreHealth(0, HealthSettings(rejoin_after_s=1.0))
    assert run(h, [FATAL] * 10)[0] == "OFFLINE" and h.state == CoreState.OFFLINE


def test_ground_command_pins_and_releases() -> None:
    """`core disable` pins OFFLINE regardless of evidence; `core enable` returns it HEALTHY at once."""
    h = CoreHealth(0, HealthSettings(rejoin_after_s=0.0))
    h.observe(0.0, SEVERE)
    assert h.force(1.0, CoreState.OFFLINE, "ground: disable") is not None
    assert h.observe(2.0, []) is None and h.state == CoreState.OFFLINE
    change = h.force(3.0, None, "ground: enable")
    assert change is not None and h.state == CoreState.HEALTHY


def test_rejoin_zero_means_only_ground() -> None:
    """With rejoin_after_s = 0 a degraded core never comes back by itself."""
    h = CoreHealth(0, HealthSettings(rejoin_after_s=0.0))
    h.observe(0.0, SEVERE)
    assert all(h.observe(float(t), []) is None for t in range(1, 100))
