"""Pi throttle state from sysfs: the firmware driver's ``get_throttled`` file and the ``rpi_volt`` hwmon.

Both come from the same firmware poll: the ``raspberrypi-hwmon`` driver asks the firmware every 2 s
and clears the sticky bits each time, so a "since boot" bit means "since the previous poll" there.
"""

from __future__ import annotations

from hal.errors import HalParseError
from hal.fs import Probe
from hal.types import ThrottleFlags

#: The firmware driver's file (``%x``, no ``0x``); Pi 4 under ``soc``, Pi 5 under ``soc@107c000000``.
GET_THROTTLED_GLOBS = (
    "/sys/devices/platform/soc/soc:firmware/get_throttled",
    "/sys/devices/platform/soc*/*:firmware/get_throttled",
    "/sys/devices/platform/*firmware*/get_throttled",
)
RPI_VOLT = "rpi_volt"


def parse_sysfs_throttled(text: str) -> ThrottleFlags:
    """``50005`` (hex without a prefix, as the driver prints it) -> flags."""
    value = text.strip().lower()
    value = value[2:] if value.startswith("0x") else value
    if not value or len(value) > 8 or any(ch not in "0123456789abcdef" for ch in value):
        raise HalParseError(f"get_throttled: expected a hex number, got {text[:40]!r}")
    return ThrottleFlags.from_bits(int(value, 16))


def get_throttled_path(probe: Probe) -> str | None:
    """The firmware driver's ``get_throttled`` file, if this kernel has one."""
    for pattern in GET_THROTTLED_GLOBS:
        hits = probe.fs.glob(pattern)
        if hits:
            return hits[0]
    return None


def rpi_volt_hwmon(probe: Probe) -> str | None:
    """The ``rpi_volt`` hwmon directory (its ``in0_lcrit_alarm`` is the under-voltage alarm), if any."""
    for hw in probe.fs.glob("/sys/class/hwmon/hwmon[0-9]*"):
        if probe.fs.read_text(f"{hw}/name") == RPI_VOLT:
            return hw
    return None


def read_under_voltage(probe: Probe, hwmon: str) -> bool | None:
    """``in0_lcrit_alarm``: 1 if the last firmware poll (every 2 s) saw under-voltage."""
    value = probe.int(f"{hwmon}/in0_lcrit_alarm", "throttle.rpi_volt")
    if value not in (0, 1):
        if value is not None:
            probe.miss("throttle.rpi_volt")
        return None
    return bool(value)
