"""The board's speed factor: 1 on a fast machine, larger under a CPU quota, and a configured one wins."""

from __future__ import annotations

from flightos.kernel.health import speed


def test_a_configured_factor_is_used_as_is() -> None:
    """health.speed_factor > 0 is not second-guessed by a measurement."""
    assert speed.resolve(4.5) == 4.5


def test_the_measured_factor_is_bounded() -> None:
    """A measurement is at least 1 (never tighter than the defaults) and at most the cap."""
    factor = speed.resolve(0)
    assert 1.0 <= factor <= speed.MAX_FACTOR
