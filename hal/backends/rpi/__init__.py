"""Raspberry Pi 4/5 backend: sysfs plus ``vcgencmd`` (throttling, firmware temp, volts, PMIC)."""

from hal.backends.rpi.board import RpiBoard

__all__ = ["RpiBoard"]
