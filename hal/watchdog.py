"""Hardware watchdog access: open with a timeout, pet, and disarm with the magic close 'V'."""

from __future__ import annotations

import fcntl
import os
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType

from hal.errors import HalError
from hal.fs import Fs
from hal.types import WatchdogInfo

WDIOC_KEEPALIVE = 0x80045705  # _IOR('W', 5, int)
WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
WDIOC_GETTIMEOUT = 0x80045707  # _IOR('W', 7, int)

Ioctl = Callable[[int, int, bytes], bytes]

#: ``bootstatus`` bits (linux/watchdog.h ``WDIOF_*``) and what each says about the last reset.
BOOTSTATUS_BITS: tuple[tuple[int, str], ...] = (
    (0x0020, "watchdog reset (WDIOF_CARDRESET)"),
    (0x0001, "overheat (WDIOF_OVERHEAT)"),
    (0x0002, "fan fault (WDIOF_FANFAULT)"),
    (0x0004, "external relay 1 (WDIOF_EXTERN1)"),
    (0x0008, "external relay 2 (WDIOF_EXTERN2)"),
    (0x0010, "power under-voltage (WDIOF_POWERUNDER)"),
    (0x0040, "power over-voltage (WDIOF_POWEROVER)"),
)
WDIOF_CARDRESET = 0x0020

#: Identities of PC chipset watchdogs (``/sys/class/watchdog/watchdogN/identity``, lower case): they reset
#: the whole machine, so a debugger pause of the kernel longer than the timeout reboots a workstation.
PC_CHIPSET_WATCHDOGS = ("itco", "sp5100", "wdat", "it87", "w836", "f718", "nct6", "sch311", "ib700", "i6300esb")


def sysfs_dir(device: str) -> str:
    """The sysfs directory describing a watchdog device: ``/dev/watchdogN`` -> ``watchdogN``, and the
    legacy ``/dev/watchdog`` (or any other name) -> ``watchdog0``, the device the legacy node opens."""
    m = re.fullmatch(r"/dev/watchdog(\d+)", device)
    return f"/sys/class/watchdog/watchdog{m.group(1) if m else 0}"


def device_node(sysfs: str) -> str:
    """The device node of a ``/sys/class/watchdog/watchdogN`` directory: ``/dev/watchdogN``."""
    return "/dev/" + sysfs.rstrip("/").rsplit("/", 1)[-1]


def reset_reason(bootstatus: int) -> str:
    """The ``WDIOF_*`` bits of ``bootstatus`` in words; 0 is a normal (power-on or software) boot."""
    words = [text for bit, text in BOOTSTATUS_BITS if bootstatus & bit]
    unknown = bootstatus & ~sum(bit for bit, _ in BOOTSTATUS_BITS)
    if unknown:
        words.append(f"other bits 0x{unknown:x}")
    return ", ".join(words) if words else "normal boot (no watchdog reset recorded)"


def read_info(fs: Fs, device: str) -> WatchdogInfo | None:
    """What sysfs says about ``device``: identity, timeouts, nowayout and the last reset; None without sysfs."""
    base = sysfs_dir(device)
    if not fs.exists(base):
        return None
    timeout = fs.read_int(f"{base}/timeout")
    max_timeout = fs.read_int(f"{base}/max_timeout")
    nowayout = fs.read_int(f"{base}/nowayout")
    bootstatus = fs.read_int(f"{base}/bootstatus")
    return WatchdogInfo(
        identity=fs.read_text(f"{base}/identity"),
        timeout_s=float(timeout) if timeout is not None else None,
        max_timeout_s=float(max_timeout) if max_timeout is not None else None,
        device=base,
        nowayout=bool(nowayout) if nowayout is not None else None,
        bootstatus=bootstatus,
        reset_reason=reset_reason(bootstatus) if bootstatus is not None else None,
    )


def pc_chipset_warning(identity: str | None, device: str) -> str | None:
    """A warning when ``identity`` names a PC chipset watchdog (iTCO_wdt, SP5100 TCO...), else None."""
    if identity is None or not any(tag in identity.lower() for tag in PC_CHIPSET_WATCHDOGS):
        return None
    return (
        f"{device} is a PC chipset watchdog ({identity}): it resets the whole machine when the kernel is not "
        "petting it, e.g. while a debugger pauses it; enable it only on a dedicated machine"
    )


def check_periods(timeout_s: float, pet_period_s: float, max_timeout_s: float | None) -> str | None:
    """Why ``pet_period_s`` < ``timeout_s`` <= ``max_timeout_s`` does not hold (the key first), or None."""
    if max_timeout_s is not None and timeout_s > max_timeout_s:
        return (
            f"watchdog.timeout_s: expected at most this watchdog's maximum of {max_timeout_s:g} s "
            f"(max_timeout in sysfs), got {timeout_s:g}"
        )
    if not pet_period_s < timeout_s:
        return f"watchdog.pet_period_s: expected less than watchdog.timeout_s ({timeout_s:g} s), got {pet_period_s:g}"
    return None


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


def status_fields(info: WatchdogInfo | None) -> dict[str, str | int | bool | None]:
    """The configured device's sysfs facts for a status document: device, nowayout, the last reset."""
    if info is None:
        return {}
    return {
        "device": info.device,
        "nowayout": info.nowayout,
        "bootstatus": info.bootstatus,
        "reset_reason": info.reset_reason,
    }
