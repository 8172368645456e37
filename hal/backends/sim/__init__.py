"""The simulated rad-hard target (GR740-like): physics, radiation faults, a rendered sysfs tree."""

from hal.backends.sim.board import SimBoard, SimEvent

__all__ = ["SimBoard", "SimEvent"]
