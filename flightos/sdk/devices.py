"""Payload devices for services: ``self.devices.i2c("imu")`` and friends, asyncio-friendly and granted by the target.

Each device runs its blocking I/O in a thread of its own, so a hung bus stalls only that device, never the
service's event loop (its heartbeats go on). Every failure is typed: ``DeviceNotGranted`` (the target does
not grant the device to this service), ``DeviceError`` (``.errno``: ENXIO for an I²C NACK, ENETDOWN for CAN
bus-off, EIO...), ``DeviceTimeout`` (no answer within the device's ``timeout_s``) and ``MissingExtra`` (the
hardware library is not installed: ``pip install 'flightos[devices]'``).
"""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import hal.devices as hd
from hal.devices import CanFrame, DeviceError, DeviceTimeout, MissingExtra

__all__ = [
    "I2C",
    "Can",
    "CanFrame",
    "DeviceError",
    "DeviceGrants",
    "DeviceNotGranted",
    "DeviceTimeout",
    "Devices",
    "Gpio",
    "MissingExtra",
    "Spi",
    "Uart",
]

T = TypeVar("T")
D = TypeVar("D")
H = TypeVar("H", bound="_Handle[Any]")
TIMEOUT_MARGIN_S = 0.5
"""Slack over a device's own timeout before the SDK gives up on its thread (the driver should answer first)."""


class DeviceNotGranted(DeviceError):
    """The service asked for a device the target does not grant it (``[devices.NAME] services``)."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(device, message, errno.EACCES)


@dataclass(frozen=True)
class DeviceGrants:
    """What the kernel hands a service process: its service name, the device tables granted to it, and where."""

    service: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Device name -> its checked ``[devices.NAME]`` table, ``kind`` included."""
    runtime_dir: Path | None = None
    simulated: bool = False
    """True on sim targets: the devices are simulated, sharing their state under ``runtime_dir``."""
    kernel_pid: int = 0
    """The kernel of this run: simulated devices keep their state in ``runtime_dir/devices-<kernel_pid>``."""


class _Handle(Generic[D]):
    """One opened device: a blocking device object behind a one-thread executor, opened on first use."""

    def __init__(self, name: str, table: dict[str, Any], opener: Callable[[], D]) -> None:
        self.name = name
        self.table = table
        self.timeout_s = float(table.get("timeout_s", 1.0))
        self._opener = opener
        self._dev: D | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"device-{name}")

    def _device(self) -> D:
        if self._dev is None:
            self._dev = self._opener()
        return self._dev

    async def _run(self, fn: Callable[[D], T], wait_s: float | None = None) -> T:
        """Run ``fn(device)`` in the device's thread; a DeviceTimeout if it outlasts the device's timeout."""
        limit = (self.timeout_s if wait_s is None else wait_s) + TIMEOUT_MARGIN_S
        fut = asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(self._device()))
        try:
            return await asyncio.wait_for(fut, limit)
        except asyncio.TimeoutError:
            raise DeviceTimeout(self.name, f"no answer within {limit:g} s") from None
        except OSError as exc:  # a library error that escaped its backend's translation
            raise DeviceError(self.name, str(exc), exc.errno or errno.EIO) from None

    async def close(self) -> None:
        """Release the device (its thread ends once a transfer in progress returns)."""
        if self._dev is not None:
            dev, self._dev = self._dev, None
            await asyncio.get_running_loop().run_in_executor(self._executor, dev.close)  # type: ignore[attr-defined]
        self._executor.shutdown(wait=False)


def _check(name: str, ok: bool, what: str, got: object) -> None:
    """An argument the device cannot take: DeviceError EINVAL naming it, rather than a masked or dropped value."""
    if not ok:
        raise DeviceError(name, f"{what}, got {got!r}", errno.EINVAL)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


I2C_MAX_MSG = 8192
"""Bytes in one I2C_RDWR message (the i2c-dev driver's limit)."""


class I2C(_Handle[hd.I2CDevice]):
    """A chip on an I²C bus, addressed by register."""

    async def read(self, register: int, length: int) -> bytes:
        """``length`` bytes from ``register`` (DeviceError ENXIO when the chip does not acknowledge)."""
        _check(self.name, _is_int(register) and 0 <= register <= 0xFF, "register: expected 0..0xff", register)
        _check(self.name, _is_int(length) and 1 <= length <= I2C_MAX_MSG, f"length: expected 1..{I2C_MAX_MSG}", length)
        return await self._run(lambda d: d.read(register, length))

    async def write(self, register: int, data: bytes) -> None:
        """Write ``data`` to ``register``."""
        _check(self.name, _is_int(register) and 0 <= register <= 0xFF, "register: expected 0..0xff", register)
        _check(self.name, len(data) < I2C_MAX_MSG, f"data: expected at most {I2C_MAX_MSG - 1} bytes", len(data))
        await self._run(lambda d: d.write(register, bytes(data)))


class Uart(_Handle[hd.UartPort]):
    """A serial port."""

    async def write(self, data: bytes) -> int:
        """Send ``data``; return the bytes written."""
        return await self._run(lambda d: d.write(bytes(data)))

    async def read(self, size: int = 256, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` (default the device's) for the first; b"" if none."""
        _check(self.name, _is_int(size) and size >= 1, "size: expected 1 or more bytes", size)
        wait = self.timeout_s if timeout is None else timeout
        return await self._run(lambda d: d.read(size, wait), wait)

    async def read_exactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly ``size`` bytes within ``timeout``, or DeviceTimeout saying how many came."""
        _check(self.name, _is_int(size) and size >= 1, "size: expected 1 or more bytes", size)
        wait = self.timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        out = b""
        while len(out) < size:
            left = end - loop.time()
            if left <= 0:
                break
            out += await self._run(functools.partial(_read, size=size - len(out), wait=left), left)
        if len(out) < size:
            raise DeviceTimeout(self.name, f"{len(out)} of {size} bytes within {wait:g} s")
        return out


def _read(d: hd.UartPort, size: int, wait: float) -> bytes:
    return d.read(size, wait)


class Gpio(_Handle[hd.GpioLine]):
    """One GPIO line."""

    async def get(self) -> int:
        """The line's logical level, 0 or 1."""
        return await self._run(lambda d: d.get())

    async def set(self, value: int, *, verify: bool = True) -> None:
        """Drive the line; with ``verify``, read it back and raise DeviceError (EIO) if it did not follow."""
        _check(self.name, value in (0, 1), "value: expected 0 or 1", value)
        level = 1 if value else 0

        def drive(d: hd.GpioLine) -> int:
            d.set(level)
            return d.get() if verify else level

        got = await self._run(drive)
        if got != level:
            raise DeviceError(self.name, f"line stuck at {got}: driven to {level}, reads back {got}", errno.EIO)


class Spi(_Handle[hd.SpiDevice]):
    """One chip select on an SPI bus."""

    async def transfer(self, data: bytes) -> bytes:
        """One full-duplex transfer: the bytes clocked in while ``data`` was clocked out."""
        return await self._run(lambda d: d.transfer(bytes(data)))


class Can(_Handle[hd.CanBus]):
    """A CAN interface."""

    async def send(self, arbitration_id: int, data: bytes, *, extended: bool = False) -> None:
        """Send one frame (DeviceError ENETDOWN when the controller is bus-off)."""
        top = 0x1FFFFFFF if extended else 0x7FF
        _check(
            self.name,
            _is_int(arbitration_id) and 0 <= arbitration_id <= top,
            f"arbitration_id: expected 0..0x{top:x} for a{'n extended' if extended else ' standard'} frame",
            arbitration_id,
        )
        if len(data) > 8:
            raise DeviceError(
                self.name, f"a classic CAN frame carries at most 8 bytes, got {len(data)}", errno.EMSGSIZE
            )
        frame = CanFrame(arbitration_id, bytes(data), extended)
        await self._run(lambda d: d.send(frame, self.timeout_s))

    async def recv(self, timeout: float | None = None) -> CanFrame | None:
        """The next frame within ``timeout`` (default the device's), or None."""
        wait = self.timeout_s if timeout is None else timeout
        return await self._run(lambda d: d.recv(wait), wait)


class Devices:
    """The devices the target grants this service, opened by name on first use."""

    def __init__(self, grants: DeviceGrants) -> None:
        self.grants = grants
        self._handles: dict[str, _Handle[Any]] = {}
        self._bench: Any = None

    @property
    def names(self) -> list[str]:
        """The names of the devices granted to this service."""
        return sorted(self.grants.tables)

    def _table(self, name: str, kind: str) -> dict[str, Any]:
        table = self.grants.tables.get(name)
        if table is None:
            granted = ", ".join(self.names) or "none"
            raise DeviceNotGranted(
                name,
                f"not granted to service {self.grants.service!r}: the target must declare "
                f"[devices.{name}] with {self.grants.service!r} in its services "
                f"(granted: {granted})",
            )
        if table["kind"] != kind:
            raise DeviceError(name, f"declared kind = {table['kind']!r}, not {kind!r}", errno.EINVAL)
        return table

    def _sim(self) -> Any:
        """The simulated bench on sim targets, else None (hardware)."""
        if not self.grants.simulated:
            return None
        if self._bench is None:
            from hal.devices.sim import SimBench

            self._bench = SimBench(self.grants.runtime_dir or Path("."), self.grants.kernel_pid)
            self._bench.sweep()
        return self._bench

    def _handle(self, name: str, kind: str, cls: type[H], opener: Callable[[dict[str, Any]], Any]) -> H:
        table = self._table(name, kind)  # every call checks the grant and the kind
        handle = self._handles.get(name)
        if not isinstance(handle, cls):
            handle = cls(name, table, lambda: opener(table))
            self._handles[name] = handle
        return handle

    def i2c(self, name: str) -> I2C:
        """The I²C device ``name``."""
        return self._handle(
            name,
            "i2c",
            I2C,
            lambda t: hd.open_i2c(
                name,
                bus=t["bus"],
                address=t["address"],
                timeout_s=t["timeout_s"],
                bench=self._sim(),
                sim_heater=t.get("sim_heater", ""),
            ),
        )

    def uart(self, name: str) -> Uart:
        """The serial port ``name``."""
        return self._handle(
            name,
            "uart",
            Uart,
            lambda t: hd.open_uart(name, port=t["port"], baud=t["baud"], timeout_s=t["timeout_s"], bench=self._sim()),
        )

    def gpio(self, name: str) -> Gpio:
        """The GPIO line ``name``."""
        return self._handle(
            name,
            "gpio",
            Gpio,
            lambda t: hd.open_gpio(
                name,
                chip=t["chip"],
                line=t["line"],
                output=t["direction"] == "output",
                active_low=t["active_low"],
                initial=t["initial"],
                bench=self._sim(),
            ),
        )

    def spi(self, name: str) -> Spi:
        """The SPI device ``name``."""
        return self._handle(
            name,
            "spi",
            Spi,
            lambda t: hd.open_spi(
                name,
                bus=t["bus"],
                cs=t["cs"],
                mode=t["mode"],
                speed_hz=t["speed_hz"],
                bits_per_word=t["bits_per_word"],
                bench=self._sim(),
            ),
        )

    def can(self, name: str) -> Can:
        """The CAN interface ``name``."""
        return self._handle(name, "can", Can, lambda t: hd.open_can(name, interface=t["interface"], bench=self._sim()))

    async def close(self) -> None:
        """Release every device opened so far."""
        handles, self._handles = list(self._handles.values()), {}
        for h in handles:
            await h.close()
