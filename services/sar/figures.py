"""Per-scene figures the SAR service publishes: the clutter fit and false alarms, and the energy used."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Protocol


class TileFigures(Protocol):
    """What a processed tile tells about its clutter (``detect.TileResult``)."""

    @property
    def tested_px(self) -> int: ...
    @property
    def unclustered(self) -> int: ...
    @property
    def nu(self) -> tuple[float, ...]: ...
    @property
    def pfa(self) -> float: ...


def clutter_figures(tiles: Sequence[TileFigures], pfa: float) -> dict[str, Any]:
    """The fitted K shape (median, min over cells; None unless method "k") and expected vs observed false alarms.

    Expected is the pfa (the tile's own if it has one, else ``pfa``) times the pixels tested; observed is
    the crossings outside reported ships.
    A ratio far from 1 tells the ground the clutter model does not fit this scene.
    """
    nu = [v for t in tiles for v in t.nu]
    tested = sum(t.tested_px for t in tiles)
    expected = sum((t.pfa or pfa) * t.tested_px for t in tiles)
    observed = sum(t.unclustered for t in tiles)
    return {
        "clutter_nu_median": round(statistics.median(nu), 3) if nu else None,
        "clutter_nu_min": round(min(nu), 3) if nu else None,
        "tested_px": tested,
        "fa_expected": round(expected, 2),
        "fa_observed": observed,
        "fa_ratio": round(observed / expected, 3) if expected > 0 else None,
    }


def energy(readings_w: Sequence[float], first: int, seconds: float, accounted_mj: float) -> dict[str, Any]:
    """Energy of one scene: board power (mean of the readings since ``first``, else the last) times its time.

    The kernel's accounting charges services once per health period, too coarse for a scene of a
    few seconds; it is reported beside (``energy_accounted_mj``). Without any power reading the
    energy is None and ``energy_source`` says so, never a silent 0.
    """
    during = list(readings_w[first:]) or list(readings_w[-1:])
    if not during:
        return {
            "energy_mj": None,
            "energy_source": "unavailable: no board power reading (tm.kernel.health power_w)",
            "power_w": None,
            "energy_accounted_mj": round(accounted_mj, 1),
        }
    watts = sum(during) / len(during)
    return {
        "energy_mj": round(watts * seconds * 1000.0, 1),
        "energy_source": "board power x processing time",
        "power_w": round(watts, 3),
        "energy_accounted_mj": round(accounted_mj, 1),
    }
