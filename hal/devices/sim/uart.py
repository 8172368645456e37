"""A simulated radio on a UART in loopback: what a service sends comes back to it, through the faults.

Every byte sent is also appended to the radio's transcript (``devices-<pid>/NAME.tx``), which is what the
ground would have heard. Injected faults: ``uart-bit-errors rate=R`` (a fraction R of the bytes that
come back have one bit flipped) and ``uart-dropout`` (nothing comes back).
"""

from __future__ import annotations

import random
import threading
import time

from hal.devices.sim.bench import SimBench


class SimRadio:
    """A loopback serial port; reads wait on a condition, so they return as soon as bytes arrive."""

    def __init__(self, name: str, bench: SimBench) -> None:
        self.name, self.bench = name, bench
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._rng = random.Random()
        bench.register(name, "uart")

    def write(self, data: bytes) -> int:
        """Send ``data``: record it, then loop it back through the injected faults."""
        self.bench.transmit(self.name, data)
        fault = self.bench.fault(self.name) or {}
        if fault.get("fault") == "uart-dropout":
            return len(data)
        back = bytearray(data)
        if fault.get("fault") == "uart-bit-errors":
            rate = float(fault.get("rate", 0.01))
            for i in range(len(back)):
                if self._rng.random() < rate:
                    back[i] ^= 1 << self._rng.randrange(8)
        with self._cond:
            self._rx += back
            self._cond.notify_all()
        return len(data)

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout_s`` for the first."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while not self._rx:
                left = end - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)
            out = bytes(self._rx[:size])
            del self._rx[:size]
            return out

    def close(self) -> None:
        """Drop what was not read."""
        with self._cond:
            self._rx.clear()
