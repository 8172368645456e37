"""Placement: spread services over cores, critical ones apart, constraints honoured."""

from __future__ import annotations

from flightos.kernel.health.placement import place


def test_spreads_and_keeps_critical_apart() -> None:
    """Two critical services never share a core while there are free cores."""
    out = place(
        [("a", "critical", None), ("b", "critical", None), ("c", "elastic", None), ("d", "essential", None)],
        [0, 1, 2, 3],
    )
    assert out["a"] != out["b"]
    assert len({tuple(v) for v in out.values()}) == 4


def test_constraints_are_honoured() -> None:
    """A service limited to core 3 runs on core 3."""
    assert place([("x", "elastic", [3]), ("y", "elastic", None)], [0, 1, 2, 3])["x"] == [3]


def test_constraint_on_missing_core_falls_back() -> None:
    """A constraint naming no available core still gets a core rather than none."""
    assert place([("x", "elastic", [9])], [0, 1]) == {"x": [0]}
