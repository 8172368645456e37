"""The device watchdog: timeout limits, petting, and the magic close."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import hal
from hal.watchdog import WDIOC_SETTIMEOUT, DeviceWatchdog


def test_open_pet_magic_close(tmp_path: Path) -> None:
    """open sets the timeout by ioctl, pet writes to the device, close writes 'V' to disarm."""
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    calls: list[tuple[int, int]] = []

    def ioctl(fd: int, request: int, arg: bytes) -> bytes:
        calls.append((request, struct.unpack("i", arg)[0]))
        return arg

    wd = DeviceWatchdog(str(dev), max_timeout_s=15, ioctl=ioctl)
    with wd:
        wd.open(10)
        assert wd.is_open and wd.timeout_s == 10.0
        wd.pet()
        wd.pet()
    assert not wd.is_open
    assert calls == [(WDIOC_SETTIMEOUT, 10)]
    assert dev.read_bytes() == b"\0\0V"


def test_timeout_above_max_is_refused(tmp_path: Path) -> None:
    """Asking a 15 s watchdog (bcm2835) for 20 s fails before touching the device."""
    wd = DeviceWatchdog(str(tmp_path / "absent"), max_timeout_s=15)
    with pytest.raises(hal.HalError, match="maximum of 15 s"):
        wd.open(20)
    with pytest.raises(hal.HalError, match="cannot open"):
        wd.open(5)
    with pytest.raises(hal.HalError, match="not open"):
        wd.pet()
