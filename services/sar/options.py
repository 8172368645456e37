"""``[services.sar.options]``: the SAR service reads no options; its settings are parameters."""

from __future__ import annotations

from flightos import Options


class SarOptions(Options, frozen=True):
    """No options: any key under ``[services.sar.options]`` is a typo and refused at load."""
