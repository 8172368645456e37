"""Errors raised by the HAL: one base class so callers can catch everything board-related."""

from __future__ import annotations


class HalError(Exception):
    """Base class of every error the HAL raises on purpose."""


class HalConfigError(HalError):
    """A key of the ``[hal]`` table is unknown or has a bad value; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"hal.{key}: {message}")
        self.key = key
        self.message = message


class HalUnsupported(HalError):
    """The board cannot do what was asked (e.g. CPU hotplug on a Raspberry Pi 4)."""


class HalParseError(HalError, ValueError):
    """A command output or sysfs value could not be parsed."""


class HalCoreHung(HalError):
    """Work was sent to a (simulated) core that is hung or failed."""
