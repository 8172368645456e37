"""thermwatch on a real Raspberry Pi: a TMP102 on I²C, a heater line, a UART with TX wired to RX.

Runs with ``pytest --target rpi5`` on a Pi; anywhere else, or when a device is absent, it skips and says
why. ``FLIGHTOS_HIL_I2C=BUS:ADDRESS``, ``FLIGHTOS_HIL_GPIO=CHIP:LINE`` and ``FLIGHTOS_HIL_UART=PORT`` match
the wiring (docs/devices.md).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from flightos.sdk.devices import DeviceError, DeviceGrants, Devices
from flightos.testing import RuntimeProcess
from flightos.testing.bus import Bus
from flightos.testing.plugin import TargetChoice


def wiring() -> tuple[int, int, str, str, str]:
    """(i2c bus, address, gpio chip, gpio line, uart port) from the environment, with the Pi 5 defaults."""
    bus, _, address = os.environ.get("FLIGHTOS_HIL_I2C", "1:0x48").partition(":")
    chip, _, line = os.environ.get("FLIGHTOS_HIL_GPIO", "pinctrl-rp1:GPIO17").partition(":")
    return int(bus), int(address, 0), chip, line, os.environ.get("FLIGHTOS_HIL_UART", "/dev/ttyAMA0")


def missing(bus: int, port: str) -> str | None:
    """Why this board cannot run the test before a device is touched: a library or a device node is absent."""
    for module, package in (("smbus2", "smbus2"), ("gpiod", "gpiod"), ("serial", "pyserial")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install 'flightos[devices]')"
    for node in (f"/dev/i2c-{bus}", port):
        if not Path(node).exists():
            return f"{node} does not exist on this board"
    return None


async def present(bus: int, address: int, port: str) -> str | None:
    """Why the bench cannot run this test, or None when every device is there."""
    why = missing(bus, port)
    if why:
        return why
    table = {"kind": "i2c", "bus": bus, "address": address, "timeout_s": 0.5}
    devs = Devices(DeviceGrants("hil", {"probe": table}))
    try:
        await devs.i2c("probe").read(0x00, 2)
    except DeviceError as exc:
        return f"no TMP102 answers at 0x{address:02x} on /dev/i2c-{bus}: {exc}"
    finally:
        await devs.close()
    return None


@pytest.mark.board("rpi")
async def test_thermwatch_reads_heats_and_reports_on_a_real_board(flightos_target: TargetChoice) -> None:
    bus_no, address, chip, line, port = wiring()
    why = await present(bus_no, address, port)
    if why:
        pytest.skip(why)
    grant = 'services=["thermwatch"]'
    overrides = [
        "devices.plate.kind=i2c",
        f"devices.plate.bus={bus_no}",
        f"devices.plate.address={address}",
        f"devices.plate.{grant}",
        "devices.heater.kind=gpio",
        f'devices.heater.chip="{chip}"',
        f'devices.heater.line="{line}"',
        "devices.heater.direction=output",
        f"devices.heater.{grant}",
        "devices.radio.kind=uart",
        f'devices.radio.port="{port}"',
        f"devices.radio.{grant}",
        "services.thermwatch.params.setpoint_c=85",
    ]
    async with RuntimeProcess(
        flightos_target.target, services=["thermwatch"], overrides=[*flightos_target.overrides, *overrides]
    ) as rt:
        assert rt.client is not None
        watch = Bus(rt.client)
        try:
            status = await watch.telemetry(
                "tm.thermwatch.status",
                lambda p: p["temp_c"] is not None and p["echo_ok"] >= 3,
                timeout=20,
                what="three readings and three echoed reports",
            )
        finally:
            watch.close()
    assert -40 < status["temp_c"] < 125 and status["heater"] == 1 and status["faults"] == {}
