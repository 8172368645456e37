"""A device call with an argument the device cannot take fails with DeviceError EINVAL naming it, before any I/O.

Before, the SDK masked or dropped such values: register 300 read register 0x2c (0 on the simulated TMP102), a
length of -1 returned b"", gpio set(5) drove 1, and a CAN id of 0x800 went out as a standard frame.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flightos import DeviceError
from flightos.config import target as tgt
from flightos.sdk.devices import DeviceGrants, Devices


def devices(tmp_path: Path) -> Devices:
    tables = tgt.load("sim-devices").devices_for("thermwatch")
    return Devices(DeviceGrants("thermwatch", tables, tmp_path, True, os.getpid()))


CASES: list[tuple[Callable[[Devices], Awaitable[Any]], str]] = [
    (lambda d: d.i2c("plate").read(300, 2), "plate: register: expected 0..0xff, got 300"),
    (lambda d: d.i2c("plate").read(0, -1), "plate: length: expected 1..8192, got -1"),
    (lambda d: d.i2c("plate").read(0, 0), "plate: length: expected 1..8192, got 0"),
    (lambda d: d.i2c("plate").write(-1, b"\x01"), "plate: register: expected 0..0xff, got -1"),
    (lambda d: d.gpio("heater").set(5), "heater: value: expected 0 or 1, got 5"),
    (
        lambda d: d.can("canbus").send(0x800, b"\x01"),
        "canbus: arbitration_id: expected 0..0x7ff for a standard frame, got 2048",
    ),
    (
        lambda d: d.can("canbus").send(1 << 29, b"\x01", extended=True),
        "canbus: arbitration_id: expected 0..0x1fffffff for an extended frame, got 536870912",
    ),
    (lambda d: d.uart("radio").read(-5, timeout=0.1), "radio: size: expected 1 or more bytes, got -5"),
    (lambda d: d.uart("radio").read_exactly(0), "radio: size: expected 1 or more bytes, got 0"),
]


@pytest.mark.parametrize(("call", "says"), CASES)
async def test_a_bad_argument_is_einval_naming_it(
    tmp_path: Path, call: Callable[[Devices], Awaitable[Any]], says: str
) -> None:
    devs = devices(tmp_path)
    try:
        with pytest.raises(DeviceError) as err:
            await call(devs)
    finally:
        await devs.close()
    assert err.value.errno == errno.EINVAL
    assert str(err.value) == f"{says} (EINVAL)"


async def test_the_edges_still_work(tmp_path: Path) -> None:
    devs = devices(tmp_path)
    try:
        assert len(await devs.i2c("plate").read(0xFF, 2)) == 2
        await devs.gpio("heater").set(True)
        await devs.can("canbus").send(0x7FF, b"\x01")
        await devs.can("canbus").send(0x1FFFFFFF, b"\x02", extended=True)
    finally:
        await devs.close()
