"""The schema of a target file: every key, its type, its default and what values it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A target file or ``--set`` override is wrong; the message names the file, key and expectation."""


@dataclass(frozen=True)
class Field:
    """One scalar key: a checker that returns the converted value or raises ValueError."""

    check: Callable[[Any], Any]
    default: Any
    doc: str


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(v: Any) -> float:
    """A number > 0."""
    if not _is_num(v) or v <= 0:
        raise ValueError("a number > 0")
    return float(v)


def non_negative(v: Any) -> float:
    """A number >= 0."""
    if not _is_num(v) or v < 0:
        raise ValueError("a number >= 0")
    return float(v)


def fraction(v: Any) -> float:
    """A number in [0, 1]."""
    if not _is_num(v) or not 0 <= v <= 1:
        raise ValueError("a number between 0 and 1")
    return float(v)


def positive_int(v: Any) -> int:
    """An integer >= 1."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError("an integer >= 1")
    return v


def non_negative_int(v: Any) -> int:
    """An integer >= 0."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("an integer >= 0")
    return v


def boolean(v: Any) -> bool:
    """true or false."""
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def string(v: Any) -> str:
    """A string."""
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def one_of(*choices: str) -> Callable[[Any], str]:
    """One of a fixed set of strings."""

    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError("one of " + ", ".join(repr(c) for c in choices))
        return str(v)

    return check


def core_list(v: Any) -> list[int]:
    """A list of core ids (integers >= 0)."""
    if not isinstance(v, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v
    ):
        raise ValueError("a list of core ids (integers >= 0)")
    return list(v)


SECTIONS: dict[str, dict[str, Field]] = {
    "target": {
        "name": Field(string, "", "target name shown by `flightos targets`"),
        "description": Field(string, "", "one line on what the target is for"),
    },
    "runtime": {
        "spawn": Field(one_of("forkserver", "exec"), "forkserver",
                       "how services start: a preloaded fork server (fast restarts) or a fresh interpreter"),
        "shutdown_grace_s": Field(positive, 5.0, "SIGTERM to SIGKILL grace on stop"),
        "command_queue": Field(positive_int, 64, "commands held per service while it restarts"),
        "command_timeout_s": Field(positive, 5.0, "deadline of a command that does not carry one"),
        "telemetry_hz": Field(positive, 1.0, "rate of the kernel's own telemetry"),
        "state_dir": Field(string, "", "where stores live (default: $FLIGHTOS_STATE_DIR, "
                           "~/.local/state/flightos/<target>)"),
        "log_format": Field(one_of("console", "json"), "console", "log renderer"),
        "log_level": Field(one_of("debug", "info", "warning", "error"), "info", "minimum log level"),
    },
    "health": {
        "heartbeat_period_s": Field(positive, 1.0, "heartbeat period of a normal service"),
        "heartbeat_misses": Field(positive_int, 3, "missed heartbeats before a normal service is hung"),
        "critical_heartbeat_period_s": Field(positive, 0.25, "heartbeat period of a critical service"),
        "critical_heartbeat_misses": Field(positive_int, 4, "missed heartbeats before a critical service is hung"),
        "start_timeout_s": Field(positive, 10.0, "time from spawn to ready before a start counts as failed"),
    },
    "restart": {
        "backoff_initial_s": Field(non_negative, 1.0, "delay of the second consecutive restart"),
        "backoff_max_s": Field(non_negative, 60.0, "longest delay between restarts"),
        "backoff_jitter": Field(fraction, 0.2, "± fraction of random jitter on each delay"),
        "reset_after_s": Field(positive, 600.0, "healthy time after which backoff starts again at zero"),
        "max_restarts": Field(non_negative_int, 5, "restarts allowed in the window; one more makes the service FAILED"),
        "window_s": Field(positive, 600.0, "window of the restart-intensity limit"),
    },
}

SERVICE_FIELDS: dict[str, Field] = {
    "enabled": Field(boolean, True, "run this service"),
    "criticality": Field(one_of("critical", "essential", "elastic"), "essential",
                         "critical services get faster heartbeats and the healthiest cores"),
    "restart": Field(one_of("permanent", "transient", "temporary"), "permanent",
                     "permanent: always restart; transient: only after an abnormal exit; temporary: never"),
    "cores": Field(core_list, None, "board cores the service may run on (default: placement decides)"),
    "heartbeat_period_s": Field(positive, None, "override the health section's period"),
    "heartbeat_misses": Field(positive_int, None, "override the health section's misses"),
}
SERVICE_TABLES = ("params", "options")
"""Free-form tables of a service: initial parameter values, and options the service itself reads."""
