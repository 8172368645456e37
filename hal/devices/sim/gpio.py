"""A simulated GPIO line whose level every process of the runtime sees (``devices-<kernel pid>/NAME.line``).

Injected fault: ``gpio-stuck value=V``: the line reads V whatever it is driven to (a shorted pad).
"""

from __future__ import annotations

from hal.devices.sim.bench import SimBench


class SimLine:
    """One line; an output starts at ``initial``."""

    def __init__(self, name: str, bench: SimBench, output: bool, initial: int) -> None:
        self.name, self.bench, self.output = name, bench, output
        bench.register(name, "gpio")
        if output:
            bench.set_line(name, initial)

    def get(self) -> int:
        """The level: the stuck value while ``gpio-stuck`` is injected, else the last driven one."""
        fault = self.bench.fault(self.name)
        if fault and fault["fault"] == "gpio-stuck":
            return int(fault.get("value", 0))
        return self.bench.line(self.name)

    def set(self, value: int) -> None:
        """Drive the line (a stuck line keeps its stuck level: the heater it switches stays as it was)."""
        fault = self.bench.fault(self.name)
        if fault and fault["fault"] == "gpio-stuck":
            self.bench.set_line(self.name, int(fault.get("value", 0)))
            return
        self.bench.set_line(self.name, 1 if value else 0)

    def close(self) -> None:
        """Nothing to release; the level stays, as a real line's would until the chip is reset."""
