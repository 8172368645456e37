"""The thermwatch service's event ids on ``ev.thermwatch``: stable, listed in docs/events.md, never renumbered."""

from __future__ import annotations

import enum


@enum.unique
class ThermwatchEvent(enum.IntEnum):
    """Every event thermwatch raises. Add new ids at the end; never reuse one."""

    DEVICE_FAULT = 8001
    DEVICE_RECOVERED = 8002
    HEATER_SWITCHED = 8003
