"""When jobs may be submitted and started: the spacecraft mode and the service's throttle level.

Pure functions, so the rules are tested without a runtime.

| mode / pressure | submission | queued jobs | running jobs |
|---|---|---|---|
| NOMINAL, throttle < pause level | accepted | start when a slot is free | run |
| DEGRADED | accepted | wait, with the reason | run, throttled |
| throttle >= pause level (thermal, power) | accepted | wait, with the reason | run, throttled |
| SAFE | refused (``job_refused``, reason ``safe_mode``) | wait | stopped, marked ``stopped`` |
"""

from __future__ import annotations

from services.jobs.errors import JobRefused

SAFE_REFUSAL = (
    "SAFE mode: compute jobs are refused until the spacecraft leaves SAFE "
    "(only critical services run; resubmit once the mode is NOMINAL)"
)
SAFE_STOP = "SAFE mode: running jobs are stopped (only critical services run)"


def admit(mode: str) -> None:
    """Raise JobRefused if a new job may not even be queued in this mode."""
    if mode.upper() == "SAFE":
        raise JobRefused(SAFE_REFUSAL, reason="safe_mode", mode="SAFE")


def start_blocker(mode: str, throttle: int, pause_throttle: int) -> str | None:
    """Why queued jobs may not start now, or None if they may."""
    mode = mode.upper()
    if mode == "SAFE":
        return "paused: SAFE mode (only critical services run)"
    if mode == "DEGRADED":
        return (
            "paused: DEGRADED mode, new jobs wait until the spacecraft returns to NOMINAL "
            "(running jobs go on, throttled)"
        )
    if throttle >= pause_throttle:
        return (
            f"paused: throttle level {throttle} (jobs pause at {pause_throttle}): new jobs wait until "
            "thermal or power pressure eases"
        )
    return None
