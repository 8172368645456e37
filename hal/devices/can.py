"""CAN on Linux through socketcan with python-can (the interface's bitrate is set by the system)."""

from __future__ import annotations

import errno
from typing import Any

from hal.devices.errors import DeviceError
from hal.devices.extras import load
from hal.devices.protocol import CanFrame


class SocketCan:
    """A socketcan interface such as ``can0``; bus-off reaches the caller as ENETDOWN."""

    def __init__(self, name: str, interface: str) -> None:
        self._can = load("can", device=name, kind="can", package="python-can")
        self.name = name
        try:
            self._bus: Any = self._can.Bus(interface="socketcan", channel=interface)
        except (OSError, self._can.CanError) as exc:
            raise DeviceError(name, f"open {interface}: {exc}", _code(exc, errno.ENODEV)) from None

    def send(self, frame: CanFrame, timeout_s: float) -> None:
        """Queue one frame (ENOBUFS when the queue stays full, ENETDOWN when bus-off)."""
        msg = self._can.Message(arbitration_id=frame.arbitration_id, data=frame.data, is_extended_id=frame.extended)
        try:
            self._bus.send(msg, timeout=timeout_s)
        except (OSError, self._can.CanError) as exc:
            raise DeviceError(self.name, f"send: {exc}", _code(exc, errno.EIO)) from None

    def recv(self, timeout_s: float) -> CanFrame | None:
        """The next frame within ``timeout_s``, or None."""
        try:
            msg = self._bus.recv(timeout=timeout_s)
        except (OSError, self._can.CanError) as exc:
            raise DeviceError(self.name, f"recv: {exc}", _code(exc, errno.EIO)) from None
        if msg is None:
            return None
        return CanFrame(int(msg.arbitration_id), bytes(msg.data), bool(msg.is_extended_id))

    def close(self) -> None:
        """Shut the interface's socket."""
        self._bus.shutdown()


def _code(exc: BaseException, default: int) -> int:
    """The errno a python-can or OS error carries, or ``default``."""
    code = getattr(exc, "errno", None) or getattr(exc, "error_code", None)
    return int(code) if isinstance(code, int) else default
