"""``[devices.<name>]``: the payload devices a target declares, and which services each one is granted to.

One typed frozen dataclass per kind (``i2c``, ``uart``, ``gpio``, ``spi``, ``can``), with checker, default
and doc on every field as in :mod:`flightos.config.schema`. Each device lists the services that may open it
(``services = ["thermwatch"]``); any other service that asks for it gets ``DeviceNotGranted``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import fields as dc_fields
from typing import Any

from flightos.config.schema import (
    Field,
    boolean,
    non_negative_int,
    one_of,
    positive,
    positive_int,
    setting,
    string,
)

STANDARD_BAUDS = (
    1200,
    2400,
    4800,
    9600,
    19200,
    38400,
    57600,
    115200,
    230400,
    460800,
    500000,
    576000,
    921600,
    1000000,
    1152000,
    1500000,
    2000000,
    2500000,
    3000000,
    3500000,
    4000000,
)
"""Baud rates the Linux serial drivers set exactly (termios ``Bxxx`` constants)."""
CAN_BITRATES = (10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000)
"""The CiA 301 bit rates of classic CAN."""


def service_names(v: Any) -> tuple[str, ...]:
    """A list of service names."""
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise ValueError("a list of service names")
    return tuple(v)


def i2c_address(v: Any) -> int:
    """A 7-bit I²C address outside the reserved ranges."""
    if not isinstance(v, int) or isinstance(v, bool) or not 0x03 <= v <= 0x77:
        raise ValueError("a 7-bit address in 0x03..0x77 (0x00-0x02 and 0x78-0x7f are reserved)")
    return v


def device_path(v: Any) -> str:
    """An absolute device path."""
    if not isinstance(v, str) or not v.startswith("/dev/"):
        raise ValueError("a device path such as /dev/ttyTHS1")
    return v


def choice_int(choices: tuple[int, ...], what: str) -> Callable[[Any], int]:
    """One of a fixed set of integers."""

    def check(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v not in choices:
            raise ValueError(f"{what}: one of " + ", ".join(str(c) for c in choices))
        return v

    return check


def line_id(v: Any) -> str | int:
    """A GPIO line name (string) or offset (integer >= 0)."""
    if isinstance(v, bool) or not ((isinstance(v, str) and v) or (isinstance(v, int) and v >= 0)):
        raise ValueError("a line name (string) or offset (integer >= 0)")
    return v


def chip_name(v: Any) -> str:
    """A GPIO chip's label, gpiochipN or /dev path: never empty."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError("a chip label such as pinctrl-rp1, gpiochip0 or /dev/gpiochip0")
    return v


def level(v: Any) -> int:
    """0 or 1."""
    if v not in (0, 1) or isinstance(v, bool):
        raise ValueError("0 or 1")
    return int(v)


def interface_name(v: Any) -> str:
    """A network interface name such as can0."""
    if not isinstance(v, str) or not 0 < len(v) < 16 or "/" in v or v.strip() != v:
        raise ValueError("a network interface name such as can0")
    return v


SERVICES_DOC = "services that may open this device (any other gets DeviceNotGranted)"
TIMEOUT_DOC = "longest a transfer may take before it fails with DeviceTimeout"


@dataclass(frozen=True)
class I2CDevice:
    """``kind = "i2c"``: one chip on an I²C bus (``/dev/i2c-<bus>``)."""

    bus: int = setting(non_negative_int, None, "required: the I2C bus number (/dev/i2c-N)")
    address: int = setting(i2c_address, None, "required: the chip's 7-bit address, e.g. 0x48")
    services: tuple[str, ...] = setting(service_names, (), SERVICES_DOC)
    timeout_s: float = setting(positive, 1.0, TIMEOUT_DOC)
    sim_heater: str = setting(string, "", "sim targets: the gpio device whose line heats this sensor's plate")


@dataclass(frozen=True)
class UartDevice:
    """``kind = "uart"``: a serial port (a radio, a GNSS receiver), raw 8N1."""

    port: str = setting(device_path, None, "required: the serial device, e.g. /dev/ttyTHS1 or /dev/ttyAMA0")
    baud: int = setting(choice_int(STANDARD_BAUDS, "a standard baud rate"), 115200, "bits per second")
    services: tuple[str, ...] = setting(service_names, (), SERVICES_DOC)
    timeout_s: float = setting(positive, 1.0, TIMEOUT_DOC)


@dataclass(frozen=True)
class GpioDevice:
    """``kind = "gpio"``: one line of a GPIO chip, requested through libgpiod v2."""

    chip: str = setting(chip_name, None, "required: the chip's label (e.g. pinctrl-rp1), gpiochipN or its /dev path")
    line: str | int = setting(line_id, None, "required: the line's name (e.g. GPIO17) or offset")
    direction: str = setting(one_of("input", "output"), "input", "input or output")
    active_low: bool = setting(boolean, False, "the line is active when low")
    initial: int = setting(level, 0, "an output's level when it is requested")
    services: tuple[str, ...] = setting(service_names, (), SERVICES_DOC)
    timeout_s: float = setting(positive, 1.0, TIMEOUT_DOC)


@dataclass(frozen=True)
class SpiDevice:
    """``kind = "spi"``: one chip select on an SPI bus (``/dev/spidev<bus>.<cs>``)."""

    bus: int = setting(non_negative_int, None, "required: the SPI bus number")
    cs: int = setting(non_negative_int, 0, "chip select")
    mode: int = setting(choice_int((0, 1, 2, 3), "an SPI mode"), 0, "clock polarity and phase, 0..3")
    speed_hz: int = setting(positive_int, 1_000_000, "clock rate in Hz")
    bits_per_word: int = setting(choice_int((8, 16, 32), "a word size"), 8, "bits per word")
    services: tuple[str, ...] = setting(service_names, (), SERVICES_DOC)
    timeout_s: float = setting(positive, 1.0, TIMEOUT_DOC)


@dataclass(frozen=True)
class CanDevice:
    """``kind = "can"``: a socketcan interface (its bit rate is set by the system, e.g. systemd-networkd)."""

    interface: str = setting(interface_name, None, "required: the socketcan interface, e.g. can0")
    bitrate: int = setting(
        choice_int(CAN_BITRATES, "a CAN bit rate"),
        500_000,
        "the bus's bit rate, as the system configures the interface (flightos records it, never sets it)",
    )
    services: tuple[str, ...] = setting(service_names, (), SERVICES_DOC)
    timeout_s: float = setting(positive, 1.0, TIMEOUT_DOC)


DeviceConfig = I2CDevice | UartDevice | GpioDevice | SpiDevice | CanDevice
DEVICE_TYPES: dict[str, type[Any]] = {
    "i2c": I2CDevice,
    "uart": UartDevice,
    "gpio": GpioDevice,
    "spi": SpiDevice,
    "can": CanDevice,
}
"""Every device kind and the typed view of its table (in docs order)."""


def kind_of(device: DeviceConfig) -> str:
    """The ``kind`` key a device's table has."""
    return next(k for k, cls in DEVICE_TYPES.items() if isinstance(device, cls))


def fields_of(kind: str) -> dict[str, Field]:
    """Checker, default and doc of each key of one device kind."""
    return {f.name: Field(f.metadata["check"], f.default, f.metadata["doc"]) for f in dc_fields(DEVICE_TYPES[kind])}


def device_nodes(device: DeviceConfig) -> list[str]:
    """The ``/dev`` nodes a device needs (for a unit's DeviceAllow=); CAN is a socket, not a node."""
    if isinstance(device, I2CDevice):
        return [f"/dev/i2c-{device.bus}"]
    if isinstance(device, UartDevice):
        return [device.port]
    if isinstance(device, GpioDevice):
        return [device.chip] if device.chip.startswith("/dev/") else ["char-gpiochip"]
    if isinstance(device, SpiDevice):
        return [f"/dev/spidev{device.bus}.{device.cs}"]
    return []


def to_wire(device: DeviceConfig) -> dict[str, Any]:
    """A device as the table a service process receives at spawn (``kind`` included)."""
    return {"kind": kind_of(device), **asdict(device), "services": list(device.services)}


def from_wire(table: dict[str, Any]) -> DeviceConfig:
    """The inverse of :func:`to_wire` (the table was checked when the target loaded)."""
    kind = table["kind"]
    cls = DEVICE_TYPES[kind]
    vals = {k: v for k, v in table.items() if k != "kind"}
    vals["services"] = tuple(vals.get("services", ()))
    device: DeviceConfig = cls(**vals)
    return device


def parse_devices(raw: Any, services: set[str], fail: Callable[[str, str], Exception]) -> dict[str, DeviceConfig]:
    """Check every ``[devices.<name>]`` table; ``fail(key, message)`` builds the error that names the key."""
    if not isinstance(raw, dict):
        raise fail("devices", "expected a table of [devices.<name>] tables")
    out: dict[str, DeviceConfig] = {}
    for name, table in raw.items():
        key = f"devices.{name}"
        if (
            not isinstance(name, str)
            or not name
            or not all(c.islower() or c.isdigit() or c in "_-" for c in name)
            or not name[0].islower()
        ):
            raise fail(key, "device names are lower-case letters, digits, '-' and '_'")
        if not isinstance(table, dict):
            raise fail(key, "expected a table with kind = " + " | ".join(repr(k) for k in DEVICE_TYPES))
        kind = table.get("kind")
        if kind not in DEVICE_TYPES:
            raise fail(f"{key}.kind", "expected one of " + ", ".join(repr(k) for k in DEVICE_TYPES) + f", got {kind!r}")
        fields = fields_of(kind)
        extra = sorted(set(table) - set(fields) - {"kind"})
        if extra:
            raise fail(
                f"{key}.{extra[0]}",
                f"unknown key for kind = {kind!r} (known: " + ", ".join(sorted([*fields, "kind"])) + ")",
            )
        vals: dict[str, Any] = {}
        for fname, f in fields.items():
            if fname not in table:
                if f.default is None:
                    need = f.doc.removeprefix("required: ")
                    raise fail(f"{key}.{fname}", f"missing: every {kind} device needs it ({need})")
                vals[fname] = f.default
                continue
            try:
                vals[fname] = f.check(table[fname])
            except ValueError as exc:
                given = table[fname]
                shown = hex(given) if fname == "address" and isinstance(given, int) else repr(given)
                raise fail(f"{key}.{fname}", f"expected {exc}, got {shown}") from None
        for svc in vals["services"]:
            if svc not in services:
                raise fail(
                    f"{key}.services",
                    f"unknown service {svc!r} (the target's services: " + ", ".join(sorted(services)) + ")",
                )
        out[name] = DEVICE_TYPES[kind](**vals)
    for name, dev in out.items():
        if isinstance(dev, I2CDevice) and dev.sim_heater and not isinstance(out.get(dev.sim_heater), GpioDevice):
            raise fail(f"devices.{name}.sim_heater", f"expected the name of a gpio device, got {dev.sim_heater!r}")
    _no_shared_addresses(out, fail)
    return out


def _no_shared_addresses(devices: dict[str, DeviceConfig], fail: Callable[[str, str], Exception]) -> None:
    """Two devices cannot be the same chip (an I²C bus and address, a port, an SPI chip select)."""
    seen: dict[tuple[Any, ...], str] = {}
    for name, dev in devices.items():
        ident: tuple[Any, ...] | None = None
        if isinstance(dev, I2CDevice):
            ident = ("i2c", dev.bus, dev.address)
        elif isinstance(dev, UartDevice):
            ident = ("uart", dev.port)
        elif isinstance(dev, SpiDevice):
            ident = ("spi", dev.bus, dev.cs)
        elif isinstance(dev, GpioDevice):
            ident = ("gpio", dev.chip, dev.line)
        if ident is None:
            continue
        if ident in seen:
            raise fail(f"devices.{name}", f"is the same device as devices.{seen[ident]}")
        seen[ident] = name


DOCS = """## `[devices.NAME]`

Payload devices (I2C, UART, GPIO, SPI, CAN) that services open by name (`self.devices.i2c("plate")`, see
[devices.md](devices.md)). `kind` chooses the table's keys. A device is opened only by the services its
`services` list names; any other gets `DeviceNotGranted`. On a `sim` target every device is simulated;
on a board the hardware libraries come with `pip install 'flightos[devices]'`.
"""


def render_docs() -> list[str]:
    """The ``[devices.NAME]`` part of docs/targets.md, one table per kind."""
    out = [DOCS]
    for kind, cls in DEVICE_TYPES.items():
        what = (cls.__doc__ or "").split(":", 1)[-1].strip()
        out += [f"`kind = {kind!r}`: {what}", "", "| key | default | meaning |", "|---|---|---|"]
        for key, f in fields_of(kind).items():
            default = "required" if f.default is None else "`[]`" if f.default == () else f"`{f.default!r}`"
            out.append(f"| `{key}` | {default} | {f.doc.removeprefix('required: ')} |")
        out.append("")
    return out
