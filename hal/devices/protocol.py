"""What each kind of device can do: narrow, blocking Protocols with explicit timeouts.

Hardware backends (smbus2, pyserial, gpiod, spidev, python-can) and the simulated devices both
implement them; flightos runs every call in a thread of the device's own, so a hung bus blocks only
that device. Every method raises ``DeviceError`` (with the OS errno) or ``DeviceTimeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class I2CDevice(Protocol):
    """One chip at one address on an I²C bus, addressed by register."""

    def read(self, register: int, length: int) -> bytes:
        """Read ``length`` bytes starting at ``register``."""

    def write(self, register: int, data: bytes) -> None:
        """Write ``data`` starting at ``register``."""

    def close(self) -> None:
        """Release the bus."""


class UartPort(Protocol):
    """A serial port (a radio, a GNSS receiver)."""

    def write(self, data: bytes) -> int:
        """Send ``data``; return the number of bytes written."""

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout_s`` for the first; b"" when nothing came."""

    def close(self) -> None:
        """Close the port."""


class GpioLine(Protocol):
    """One GPIO line, requested as an input or an output."""

    def get(self) -> int:
        """The line's logical value, 0 or 1 (an output reads back its pad where the chip allows)."""

    def set(self, value: int) -> None:
        """Drive an output line to ``value`` (0 or 1)."""

    def close(self) -> None:
        """Release the line."""


class SpiDevice(Protocol):
    """One chip select on an SPI bus: full-duplex transfers."""

    def transfer(self, data: bytes) -> bytes:
        """Clock ``data`` out and return the bytes clocked in (same length)."""

    def close(self) -> None:
        """Release the device."""


@dataclass(frozen=True)
class CanFrame:
    """One CAN frame: arbitration id, up to 8 data bytes, and whether the id is 29-bit."""

    arbitration_id: int
    data: bytes
    extended: bool = False


class CanBus(Protocol):
    """A CAN interface (socketcan on Linux)."""

    def send(self, frame: CanFrame, timeout_s: float) -> None:
        """Queue ``frame`` for transmission; DeviceError with ENETDOWN when the controller is bus-off."""

    def recv(self, timeout_s: float) -> CanFrame | None:
        """The next frame, or None when none came within ``timeout_s``."""

    def close(self) -> None:
        """Shut the interface down."""
