"""The SAR service's event ids on ``ev.sar``: stable, listed in docs/events.md, never renumbered."""

from __future__ import annotations

import enum


@enum.unique
class SarEvent(enum.IntEnum):
    """Every event the SAR service raises. Add new ids at the end; never reuse one."""

    SHIPS_DETECTED = 7001
