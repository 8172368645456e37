"""The jobs service's event ids on ``ev.jobs``: stable, listed in docs/events.md, never renumbered."""

from __future__ import annotations

import enum


@enum.unique
class JobsEvent(enum.IntEnum):
    """Every event the jobs service raises. Add new ids at the end; never reuse one."""

    JOB_OTHER = 3000
    JOB_STARTED = 3001
    JOB_DONE = 3002
    JOB_FAILED = 3003
    JOB_OVER_BUDGET = 3004
    JOB_CANCELLED = 3005
    JOB_STOPPED = 3006
    JOB_REFUSED = 3007
    NOT_ELASTIC = 3008
