"""flightos HAL: one interface over Linux boards, Raspberry Pi, Jetson and a simulated rad-hard CPU.

Open a board with ``hal.open_board(config)`` where ``config`` is the ``[hal]`` table of a target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hal import affinity, cpuset, injection, scenario
from hal.board import Board
from hal.config import validate
from hal.errors import HalConfigError, HalCoreHung, HalError, HalParseError, HalUnsupported
from hal.fs import Runner
from hal.injection import FaultInjection, NoFaultInjection, fault_injection
from hal.probe import Detection, ProbeReport, detect, probe_report
from hal.types import (
    BoardIdentity,
    BoardReading,
    CoreReading,
    EdacCounts,
    ThermalZone,
    ThrottleFlags,
    TimelineEvent,
    TripPoint,
    WatchdogInfo,
)
from hal.watchdog import Watchdog

BACKENDS = ("linux", "sim", "rpi", "jetson")


def open_board(config: Mapping[str, Any], *, runner: Runner | None = None) -> Board:
    """Open the board a ``[hal]`` table describes; raises HalConfigError naming any bad key."""
    if not isinstance(config, Mapping):
        raise HalConfigError("<table>", f"expected a table of keys, got {config!r}")
    backend = config.get("backend")
    if backend is None:
        raise HalConfigError("backend", f"missing; expected one of {', '.join(BACKENDS)}")
    if backend == "linux":
        from hal.backends.linux import LinuxBoard

        return LinuxBoard.from_config(config, runner)
    if backend == "rpi":
        from hal.backends.rpi import RpiBoard

        return RpiBoard.from_config(config, runner)
    if backend == "jetson":
        from hal.backends.jetson import JetsonBoard

        return JetsonBoard.from_config(config, runner)
    if backend == "sim":
        from hal.backends.sim import SimBoard

        return SimBoard.from_config(config)
    raise HalConfigError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ``[hal]`` table without opening the board; return it with defaults filled in.

    Raises the same HalConfigError (naming the key) that ``open_board`` would.
    """
    if not isinstance(config, Mapping):
        raise HalConfigError("<table>", f"expected a table of keys, got {config!r}")
    backend = config.get("backend")
    if backend == "sim":
        from hal.backends.sim.settings import sim_settings

        return sim_settings(config)
    if backend == "linux":
        from hal.backends.linux import LinuxBoard as cls
    elif backend == "rpi":
        from hal.backends.rpi import RpiBoard as cls
    elif backend == "jetson":
        from hal.backends.jetson import JetsonBoard as cls
    elif backend is None:
        raise HalConfigError("backend", f"missing; expected one of {', '.join(BACKENDS)}")
    else:
        raise HalConfigError("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return validate(config, cls.SCHEMA)


__all__ = [
    "BACKENDS",
    "Board",
    "BoardIdentity",
    "BoardReading",
    "CoreReading",
    "Detection",
    "EdacCounts",
    "FaultInjection",
    "HalConfigError",
    "HalCoreHung",
    "HalError",
    "HalParseError",
    "HalUnsupported",
    "NoFaultInjection",
    "ProbeReport",
    "Runner",
    "ThermalZone",
    "ThrottleFlags",
    "TimelineEvent",
    "TripPoint",
    "Watchdog",
    "WatchdogInfo",
    "affinity",
    "check_config",
    "cpuset",
    "detect",
    "fault_injection",
    "injection",
    "open_board",
    "probe_report",
    "scenario",
]
