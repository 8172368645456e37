"""A simulated SPI device with MISO tied to MOSI: a transfer returns what it clocked out."""

from __future__ import annotations

from hal.devices.sim.bench import SimBench


class SimSpiLoopback:
    """Loopback SPI, enough to exercise a driver's framing."""

    def __init__(self, name: str, bench: SimBench) -> None:
        self.name = name
        bench.register(name, "spi")

    def transfer(self, data: bytes) -> bytes:
        """The bytes clocked out, clocked back in."""
        return bytes(data)

    def close(self) -> None:
        """Nothing to release."""
