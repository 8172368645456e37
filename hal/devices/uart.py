"""Serial ports on Linux with pyserial (raw 8N1, no flow control)."""

from __future__ import annotations

import errno
import os
from typing import Any

from hal.devices.errors import DeviceError
from hal.devices.extras import load


class SerialUart:
    """A serial port at a fixed baud rate; reads wait for the first byte, then take what has arrived."""

    def __init__(self, name: str, port: str, baud: int, timeout_s: float) -> None:
        serial = load("serial", device=name, kind="uart", package="pyserial")
        self.name = name
        self._error = serial.SerialException
        try:
            self._port: Any = serial.Serial(port, baudrate=baud, timeout=timeout_s, write_timeout=timeout_s)
        except (OSError, serial.SerialException) as exc:
            code = getattr(exc, "errno", None)  # pyserial's text repeats the port and the errno: say it once
            why = os.strerror(code) if isinstance(code, int) else str(exc)
            raise DeviceError(name, f"open {port}: {why}", code or errno.EIO) from None

    def write(self, data: bytes) -> int:
        """Send ``data``; a write that cannot drain within the timeout is ETIMEDOUT."""
        try:
            return int(self._port.write(data))
        except (OSError, self._error) as exc:
            raise DeviceError(self.name, f"write: {exc}", getattr(exc, "errno", None) or errno.EIO) from None

    def read(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes: wait ``timeout_s`` for the first, then take what is buffered."""
        try:
            self._port.timeout = timeout_s
            first = bytes(self._port.read(1))
            if not first or size <= 1:
                return first
            return first + bytes(self._port.read(min(size - 1, self._port.in_waiting)))
        except (OSError, self._error) as exc:
            raise DeviceError(self.name, f"read: {exc}", getattr(exc, "errno", None) or errno.EIO) from None

    def close(self) -> None:
        """Close the port."""
        self._port.close()
