"""Hardware watchdog access: open with a timeout, pet, and disarm with the magic close 'V'."""

from __future__ import annotations

import fcntl
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType

from hal.errors import HalError

WDIOC_KEEPALIVE = 0x80045705  # _IOR('W', 5, int)
WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
WDIOC_GETTIMEOUT = 0x80045707  # _IOR('W', 7, int)

Ioctl = Callable[[int, int, bytes], bytes]


class Watchdog(ABC):
    """A watchdog: ``open(timeout_s)``, ``pet()`` more often than the timeout, ``close()``."""

    max_timeout_s: float | None

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True between open() and close()."""

    @property
    @abstractmethod
    def timeout_s(self) -> float | None:
        """The timeout in force, or None before open()."""

    @abstractmethod
    def open(self, timeout_s: float | None = None) -> None:
        """Arm the watchdog; from now on it must be petted within ``timeout_s``."""

    @abstractmethod
    def pet(self) -> None:
        """Restart the countdown."""

    @abstractmethod
    def close(self, disarm: bool = True) -> None:
        """Stop using it; with ``disarm`` write the magic 'V' so it does not reset the board."""

    def check_timeout(self, timeout_s: float) -> int:
        """Validate a requested timeout against the device limit; return it in whole seconds."""
        if not timeout_s > 0:
            raise HalError(f"watchdog timeout must be > 0 s, got {timeout_s!r}")
        if self.max_timeout_s is not None and timeout_s > self.max_timeout_s:
            raise HalError(
                f"watchdog timeout {timeout_s:g} s exceeds this watchdog's maximum of {self.max_timeout_s:g} s"
            )
        return max(1, round(timeout_s))

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.is_open:
            self.close(disarm=True)


class DeviceWatchdog(Watchdog):
    """A Linux ``/dev/watchdogN`` device (only one opener at a time: do not also use systemd's)."""

    def __init__(
        self,
        device: str = "/dev/watchdog",
        max_timeout_s: float | None = None,
        ioctl: Ioctl | None = None,
    ) -> None:
        self.device = device
        self.max_timeout_s = max_timeout_s
        self._ioctl: Ioctl = ioctl if ioctl is not None else _real_ioctl
        self._fd: int | None = None
        self._timeout: float | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    @property
    def timeout_s(self) -> float | None:
        return self._timeout

    def open(self, timeout_s: float | None = None) -> None:
        if self._fd is not None:
            raise HalError(f"watchdog {self.device} is already open")
        seconds = self.check_timeout(timeout_s) if timeout_s is not None else None
        try:
            fd = os.open(self.device, os.O_WRONLY)
        except OSError as exc:
            raise HalError(f"cannot open watchdog {self.device}: {exc.strerror}") from exc
        self._fd = fd
        try:
            if seconds is not None:
                out = self._ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", seconds))
                self._timeout = float(struct.unpack("i", out)[0])
            else:
                out = self._ioctl(fd, WDIOC_GETTIMEOUT, struct.pack("i", 0))
                self._timeout = float(struct.unpack("i", out)[0])
        except OSError as exc:
            self.close(disarm=True)
            raise HalError(f"watchdog {self.device}: cannot set timeout: {exc.strerror}") from exc

    def pet(self) -> None:
        if self._fd is None:
            raise HalError(f"watchdog {self.device} is not open")
        os.write(self._fd, b"\0")

    def close(self, disarm: bool = True) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if disarm:
                os.write(fd, b"V")
        finally:
            os.close(fd)
            self._timeout = None


def _real_ioctl(fd: int, request: int, arg: bytes) -> bytes:
    return fcntl.ioctl(fd, request, arg)
