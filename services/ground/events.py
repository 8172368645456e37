"""The ground service's event ids on ``ev.ground``: stable, listed in docs/events.md, never renumbered."""

from __future__ import annotations

import enum


@enum.unique
class GroundEvent(enum.IntEnum):
    """Every event the ground service raises. Add new ids at the end of their group; never reuse one."""

    TC_REJECTED = 2001
    AUTH_DISABLED = 2002
    NO_KEYS = 2003
    PACKETS_MALFORMED = 2010
    TCP_LIMITED = 2011
    DOWNLINK_STORE_UNUSABLE = 2020
    DOWNLINK_STORE_RECOVERED = 2021
    TELEMETRY_DROPPED = 2022
    GROUND_STORE_QUARANTINED = 2023
    SCHEDULE_UNUSABLE = 2024
    REPLAY_STATE_LOST = 2030
    REPLAY_RESYNCED = 2031
