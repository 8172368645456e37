"""I²C devices on Linux through ``/dev/i2c-N`` with smbus2 (combined write-then-read transfers)."""

from __future__ import annotations

import fcntl
from typing import Any

from hal.devices.errors import DeviceError, from_os_error
from hal.devices.extras import load

I2C_TIMEOUT = 0x0702
"""The i2c-dev ioctl that sets the adapter's transfer timeout, in units of 10 ms."""


class SmbusI2C:
    """One chip at ``address`` on ``/dev/i2c-<bus>``; a NACK is ENXIO/EREMOTEIO, a hung bus ETIMEDOUT."""

    def __init__(self, name: str, bus: int, address: int, timeout_s: float) -> None:
        self._smbus2 = load("smbus2", device=name, kind="i2c", package="smbus2")
        self.name, self.address = name, address
        try:
            self._bus: Any = self._smbus2.SMBus(bus)
        except OSError as exc:
            raise from_os_error(name, f"open /dev/i2c-{bus}", exc) from None
        try:  # bound the adapter's own wait, so a hung bus returns ETIMEDOUT instead of blocking the thread
            fcntl.ioctl(self._bus.fd, I2C_TIMEOUT, max(1, round(timeout_s * 100)))
        except OSError:
            pass  # not every adapter takes it; the SDK's own timeout still applies

    def read(self, register: int, length: int) -> bytes:
        """Write the register pointer, then read ``length`` bytes with a repeated start."""
        msg = self._smbus2.i2c_msg
        out, back = msg.write(self.address, [register & 0xFF]), msg.read(self.address, length)
        try:
            self._bus.i2c_rdwr(out, back)
        except OSError as exc:
            raise from_os_error(self.name, f"read 0x{register:02x} at 0x{self.address:02x}", exc) from None
        return bytes(back)

    def write(self, register: int, data: bytes) -> None:
        """Write the register pointer followed by ``data`` in one transfer."""
        try:
            self._bus.i2c_rdwr(self._smbus2.i2c_msg.write(self.address, [register & 0xFF, *data]))
        except OSError as exc:
            raise from_os_error(self.name, f"write 0x{register:02x} at 0x{self.address:02x}", exc) from None

    def close(self) -> None:
        """Close the bus file."""
        try:
            self._bus.close()
        except OSError as exc:
            raise DeviceError(self.name, f"close: {exc}") from None
