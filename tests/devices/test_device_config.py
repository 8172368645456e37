"""``[devices.<name>]``: each kind's keys are checked, and every mistake names its key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flightos.config import target as tgt
from flightos.config.devices import GpioDevice, I2CDevice, device_nodes, from_wire, to_wire
from flightos.config.schema import ConfigError

PLATE = {"kind": "i2c", "bus": 1, "address": 0x48, "services": ["thermwatch"]}


def load(devices: dict[str, Any]) -> tgt.Target:
    raw = copy.deepcopy(tgt.load("sim-devices").raw)
    raw["devices"] = devices
    return tgt.from_dict(raw, "t.toml")


def test_the_example_target_declares_typed_devices_granted_to_thermwatch() -> None:
    t = tgt.load("sim-devices")
    plate = t.devices["plate"]
    assert isinstance(plate, I2CDevice) and (plate.bus, plate.address, plate.services) == (1, 0x48, ("thermwatch",))
    assert isinstance(t.devices["heater"], GpioDevice) and t.devices["heater"].line == "GPIO17"
    assert set(t.devices_for("thermwatch")) == {"plate", "heater", "radio", "adc", "canbus"}
    assert t.devices_for("housekeeping") == {}
    assert device_nodes(plate) == ["/dev/i2c-1"] and device_nodes(t.devices["radio"]) == ["/dev/ttyAMA0"]


def test_a_device_travels_to_the_service_and_back_unchanged() -> None:
    t = tgt.load("sim-devices")
    for dev in t.devices.values():
        assert from_wire(to_wire(dev)) == dev


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (
            {**PLATE, "address": 0x88},
            "devices.plate.address: expected a 7-bit address in 0x03..0x77 "
            "(0x00-0x02 and 0x78-0x7f are reserved), got 0x88",
        ),
        (
            {**PLATE, "kind": "usb"},
            "devices.plate.kind: expected one of 'i2c', 'uart', 'gpio', 'spi', 'can', got 'usb'",
        ),
        (
            {k: v for k, v in PLATE.items() if k != "bus"},
            "devices.plate.bus: missing: every i2c device needs it (the I2C bus number",
        ),
        ({**PLATE, "services": ["nosuch"]}, "devices.plate.services: unknown service 'nosuch'"),
        ({**PLATE, "baud": 9600}, "devices.plate.baud: unknown key for kind = 'i2c' (known: address, bus, kind"),
        ({**PLATE, "sim_heater": "radio"}, "devices.plate.sim_heater: expected the name of a gpio device, got 'radio'"),
        ({**PLATE, "timeout_s": float("nan")}, "devices.plate.timeout_s: expected a number > 0"),
        ({"kind": "uart", "port": "ttyS0"}, "devices.plate.port: expected a device path such as /dev/ttyTHS1"),
        ({"kind": "uart", "port": "/dev/ttyS0", "baud": 115201}, "devices.plate.baud: expected a standard baud rate"),
        ({"kind": "gpio", "chip": "gpiochip0", "line": -1}, "devices.plate.line: expected a line name"),
        (
            {"kind": "gpio", "chip": " ", "line": "GPIO17"},
            "devices.plate.chip: expected a chip label such as pinctrl-rp1",
        ),
        ({"kind": "spi", "bus": 0, "mode": 4}, "devices.plate.mode: expected an SPI mode: one of 0, 1, 2, 3, got 4"),
        ({"kind": "can", "interface": "can0", "bitrate": 12345}, "devices.plate.bitrate: expected a CAN bit rate"),
    ],
)
def test_a_bad_device_table_is_a_config_error_naming_the_key(device: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load({"plate": device})
    assert str(err.value).startswith("t.toml: " + message)


def test_two_tables_for_one_chip_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"devices\.twin: is the same device as devices\.plate"):
        load({"plate": PLATE, "twin": {**PLATE, "services": []}})


def test_a_grant_can_be_set_from_the_command_line() -> None:
    t = tgt.load("sim-devices", ['devices.plate.services=["thermwatch", "housekeeping"]'])
    assert set(t.devices_for("housekeeping")) == {"plate"}
