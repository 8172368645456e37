"""Simulated devices for ``sim`` targets: the same Protocols as the hardware, with injectable faults."""

from hal.devices.sim.bench import SimBench
from hal.devices.sim.faults import DEVICE_FAULTS, inject

__all__ = ["DEVICE_FAULTS", "SimBench", "inject"]
