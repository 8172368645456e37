"""EDAC in the kernel's status: the board's corrected/uncorrectable counts and, where the board says, its scrub."""

from __future__ import annotations

from typing import Any

import hal

SCRUB_EXTRAS = {"edac_code": "code", "scrub_period_s": "scrub_period_s", "next_scrub_in_s": "next_scrub_in_s"}
"""Board extras (the simulator's) that say when upsets reach the counters, and their names in the status."""


def edac_status(reading: hal.BoardReading | None) -> dict[str, Any] | None:
    """``{corrected, uncorrected[, code, scrub_period_s, next_scrub_in_s]}``, or None on a board without EDAC."""
    if reading is None or reading.edac is None:
        return None
    out: dict[str, Any] = {"corrected": reading.edac.corrected, "uncorrected": reading.edac.uncorrected}
    for extra, name in SCRUB_EXTRAS.items():
        value = reading.extras.get(extra)
        if value is not None:
            out[name] = value
    return out
