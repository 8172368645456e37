"""``[services.housekeeping.options]``: housekeeping reads no options; its settings are parameters."""

from __future__ import annotations

from flightos import Options


class HousekeepingOptions(Options, frozen=True):
    """No options: any key under ``[services.housekeeping.options]`` is a typo and refused at load."""
