"""The test service's event ids on ``ev.test``: stable, listed in docs/events.md, never renumbered."""

from __future__ import annotations

import enum


@enum.unique
class TestEvent(enum.IntEnum):
    """Every event the test service raises with an id (its drills' crash and hang events carry none: 0)."""

    ANNOUNCED = 17001
