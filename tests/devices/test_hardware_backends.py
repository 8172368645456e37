"""The hardware backends translate each library's failures into typed device errors that keep the errno.

The libraries are replaced by small fakes with their real call signatures (smbus2, pyserial, gpiod v2,
spidev, python-can), so this runs on any machine; where a library is really installed, one test also
opens a device node that does not exist through it.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hal.devices import CanFrame, DeviceError, DeviceTimeout, open_can, open_gpio, open_i2c, open_spi, open_uart


class FakeMsg:
    """smbus2.i2c_msg: ``write(addr, buf)`` and ``read(addr, n)``; a read yields its bytes."""

    def __init__(self, addr: int, data: list[int]) -> None:
        self.addr, self.data = addr, data

    @classmethod
    def write(cls, addr: int, buf: list[int]) -> FakeMsg:
        return cls(addr, list(buf))

    @classmethod
    def read(cls, addr: int, length: int) -> FakeMsg:
        return cls(addr, [0] * length)

    def __iter__(self) -> Iterator[int]:
        return iter(self.data)


class FakeSMBus:
    """smbus2.SMBus over a register map; ``fail`` makes the next transfers raise that errno."""

    registers: dict[int, int] = {}
    fail = 0
    written: list[list[int]] = []

    def __init__(self, bus: int) -> None:
        if bus != 1:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self.fd = os.open(os.devnull, os.O_RDWR)  # the I2C_TIMEOUT ioctl fails on it (ENOTTY) and is ignored

    def i2c_rdwr(self, *msgs: FakeMsg) -> None:
        if FakeSMBus.fail:
            raise OSError(FakeSMBus.fail, os.strerror(FakeSMBus.fail))
        if len(msgs) == 1:
            FakeSMBus.written.append(msgs[0].data)
            return
        reg = msgs[0].data[0]
        msgs[1].data[:] = [self.registers.get(reg + i, 0) for i in range(len(msgs[1].data))]

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fake_smbus2(monkeypatch: pytest.MonkeyPatch) -> type[FakeSMBus]:
    module = types.SimpleNamespace(SMBus=FakeSMBus, i2c_msg=FakeMsg)
    monkeypatch.setitem(sys.modules, "smbus2", module)
    FakeSMBus.registers, FakeSMBus.fail, FakeSMBus.written = {0: 0x19, 1: 0x00}, 0, []
    return FakeSMBus


def test_i2c_reads_with_a_repeated_start_and_keeps_the_errno_of_a_nack(fake_smbus2: type[FakeSMBus]) -> None:
    dev = open_i2c("plate", bus=1, address=0x48, timeout_s=0.5)
    assert dev.read(0x00, 2) == b"\x19\x00"
    dev.write(0x01, b"\x60\xa0")
    assert fake_smbus2.written == [[0x01, 0x60, 0xA0]]
    fake_smbus2.fail = errno.ENXIO
    with pytest.raises(DeviceError) as nack:
        dev.read(0x00, 2)
    assert nack.value.errno == errno.ENXIO and "read 0x00 at 0x48" in str(nack.value)
    fake_smbus2.fail = errno.ETIMEDOUT
    with pytest.raises(DeviceTimeout):
        dev.read(0x00, 2)
    dev.close()
    with pytest.raises(DeviceError) as missing:
        open_i2c("plate", bus=7, address=0x48, timeout_s=0.5)
    assert missing.value.errno == errno.ENOENT and "open /dev/i2c-7" in str(missing.value)


class FakeSerialException(OSError):
    """pyserial's SerialException is an IOError."""


class FakeSerial:
    """serial.Serial with a receive buffer."""

    def __init__(self, port: str, baudrate: int, timeout: float, write_timeout: float) -> None:
        if not port.endswith("AMA0"):
            raise FakeSerialException(errno.ENOENT, f"could not open port {port}")
        self.timeout, self.rx, self.tx = timeout, bytearray(b"abc"), bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def read(self, n: int) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def write(self, data: bytes) -> int:
        self.tx += data
        return len(data)

    def close(self) -> None: ...


def test_uart_reads_what_arrived_and_names_a_port_that_cannot_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "serial", types.SimpleNamespace(Serial=FakeSerial, SerialException=FakeSerialException)
    )
    port = open_uart("radio", port="/dev/ttyAMA0", baud=115200, timeout_s=0.5)
    assert port.write(b"hi") == 2
    assert port.read(10, 0.1) == b"abc" and port.read(10, 0.1) == b""
    with pytest.raises(DeviceError) as err:
        open_uart("radio", port="/dev/ttyS9", baud=115200, timeout_s=0.5)
    assert err.value.errno == errno.ENOENT and "open /dev/ttyS9" in str(err.value)


def test_a_gpio_chip_label_that_no_chip_has_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    line_mod = types.SimpleNamespace(
        Direction=types.SimpleNamespace(INPUT=0, OUTPUT=1), Value=types.SimpleNamespace(ACTIVE=1, INACTIVE=0)
    )
    gpiod = types.ModuleType("gpiod")
    gpiod.line = line_mod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line_mod)
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([]))  # a machine without GPIO chips
    with pytest.raises(DeviceError) as err:
        open_gpio("heater", chip="pinctrl-rp1", line="GPIO17", output=True)
    assert err.value.errno == errno.ENODEV and "no GPIO chip labelled 'pinctrl-rp1' (found: none)" in str(err.value)


def test_spi_and_can_keep_the_errno_of_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    class SpiDev:
        def open(self, bus: int, cs: int) -> None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=SpiDev))
    with pytest.raises(DeviceError) as spi:
        open_spi("adc", bus=0, cs=1, mode=0, speed_hz=1_000_000)
    assert spi.value.errno == errno.ENOENT and "/dev/spidev0.1" in str(spi.value)

    class CanError(Exception):
        def __init__(self, message: str, error_code: int | None = None) -> None:
            super().__init__(message)
            self.error_code = error_code

    class Bus:
        def __init__(self, interface: str, channel: str) -> None:
            self.sent: list[Any] = []

        def send(self, msg: Any, timeout: float) -> None:
            raise CanError("Failed to transmit: Network is down", errno.ENETDOWN)

        def recv(self, timeout: float) -> Any:
            return types.SimpleNamespace(arbitration_id=0x42, data=bytearray(b"\x01"), is_extended_id=False)

        def shutdown(self) -> None: ...

    monkeypatch.setitem(sys.modules, "can", types.SimpleNamespace(Bus=Bus, CanError=CanError, Message=dict))
    bus = open_can("canbus", interface="can0")
    with pytest.raises(DeviceError) as off:
        bus.send(CanFrame(0x1, b"\x00"), 0.1)
    assert off.value.errno == errno.ENETDOWN
    assert bus.recv(0.1) == CanFrame(0x42, b"\x01", False)
    bus.close()


@pytest.mark.skipif(importlib.util.find_spec("smbus2") is None, reason="smbus2 is not installed (the devices extra)")
def test_the_real_smbus2_names_a_bus_that_does_not_exist() -> None:
    with pytest.raises(DeviceError) as err:
        open_i2c("plate", bus=250, address=0x48, timeout_s=0.5)
    assert err.value.errno == errno.ENOENT and "/dev/i2c-250" in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("serial") is None, reason="pyserial is not installed (the devices extra)")
def test_the_real_pyserial_names_a_port_that_does_not_exist_once(tmp_path: Path) -> None:
    """Was 'open P: [Errno 2] could not open port P: [Errno 2] No such file or directory: 'P' (ENOENT)'."""
    port = str(tmp_path / "ttyUSB9")
    with pytest.raises(DeviceError) as err:
        open_uart("radio", port=port, baud=115200, timeout_s=0.5)
    assert err.value.errno == errno.ENOENT
    assert str(err.value) == f"radio: open {port}: No such file or directory (ENOENT)"
