"""SPI devices on Linux through ``/dev/spidevB.C`` with spidev."""

from __future__ import annotations

from typing import Any

from hal.devices.errors import from_os_error
from hal.devices.extras import load


class SpidevDevice:
    """One chip select, opened with its mode, clock and word size."""

    def __init__(self, name: str, bus: int, cs: int, mode: int, speed_hz: int, bits_per_word: int) -> None:
        spidev = load("spidev", device=name, kind="spi", package="spidev")
        self.name = name
        self._dev: Any = spidev.SpiDev()
        try:
            self._dev.open(bus, cs)
            self._dev.mode, self._dev.max_speed_hz, self._dev.bits_per_word = mode, speed_hz, bits_per_word
        except OSError as exc:
            raise from_os_error(name, f"open /dev/spidev{bus}.{cs}", exc) from None

    def transfer(self, data: bytes) -> bytes:
        """One full-duplex transfer with chip select held throughout."""
        try:
            return bytes(self._dev.xfer2(list(data)))
        except OSError as exc:
            raise from_os_error(self.name, "transfer", exc) from None

    def close(self) -> None:
        """Close the device file."""
        self._dev.close()
