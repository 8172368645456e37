"""Payload devices (I²C, UART, GPIO, SPI, CAN) on real boards and on the simulator.

``open_*`` return a blocking device (see :mod:`hal.devices.protocol`): on hardware through the
maintained Linux libraries, imported only when a device is opened (``pip install 'flightos[devices]'``),
and on a simulated board (``bench`` given) a simulated device sharing its state through the runtime
directory. Nothing heavy is imported with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.devices.errors import DeviceError, DeviceTimeout, MissingExtra
from hal.devices.protocol import CanBus, CanFrame, GpioLine, I2CDevice, SpiDevice, UartPort

if TYPE_CHECKING:
    from hal.devices.sim.bench import SimBench

__all__ = [
    "CanBus",
    "CanFrame",
    "DeviceError",
    "DeviceTimeout",
    "GpioLine",
    "I2CDevice",
    "MissingExtra",
    "SpiDevice",
    "UartPort",
    "open_can",
    "open_gpio",
    "open_i2c",
    "open_spi",
    "open_uart",
]


def open_i2c(
    name: str, *, bus: int, address: int, timeout_s: float, bench: SimBench | None = None, sim_heater: str = ""
) -> I2CDevice:
    """The chip at ``address`` on I²C bus ``bus`` (simulated: a TMP102-like sensor warmed by ``sim_heater``)."""
    if bench is not None:
        from hal.devices.sim.i2c import SimTempSensor

        return SimTempSensor(name, address, bench, timeout_s, sim_heater)
    from hal.devices.i2c import SmbusI2C

    return SmbusI2C(name, bus, address, timeout_s)


def open_uart(name: str, *, port: str, baud: int, timeout_s: float, bench: SimBench | None = None) -> UartPort:
    """The serial port ``port`` at ``baud`` (simulated: a radio in loopback)."""
    if bench is not None:
        from hal.devices.sim.uart import SimRadio

        return SimRadio(name, bench)
    from hal.devices.uart import SerialUart

    return SerialUart(name, port, baud, timeout_s)


def open_gpio(
    name: str,
    *,
    chip: str,
    line: str | int,
    output: bool,
    active_low: bool = False,
    initial: int = 0,
    bench: SimBench | None = None,
) -> GpioLine:
    """One line of a GPIO chip (by label, ``gpiochipN`` or path), as an input or an output."""
    if bench is not None:
        from hal.devices.sim.gpio import SimLine

        return SimLine(name, bench, output, initial)
    from hal.devices.gpio import GpiodLine

    return GpiodLine(name, chip, line, output, active_low, initial)


def open_spi(
    name: str, *, bus: int, cs: int, mode: int, speed_hz: int, bits_per_word: int = 8, bench: SimBench | None = None
) -> SpiDevice:
    """``/dev/spidev<bus>.<cs>`` (simulated: MISO tied to MOSI)."""
    if bench is not None:
        from hal.devices.sim.spi import SimSpiLoopback

        return SimSpiLoopback(name, bench)
    from hal.devices.spi import SpidevDevice

    return SpidevDevice(name, bus, cs, mode, speed_hz, bits_per_word)


def open_can(name: str, *, interface: str, bench: SimBench | None = None) -> CanBus:
    """The socketcan interface ``interface`` (simulated: python-can's virtual bus, or an in-process one)."""
    if bench is not None:
        from hal.devices.sim.can import SimCan

        return SimCan(name, interface, bench)
    from hal.devices.can import SocketCan

    return SocketCan(name, interface)
