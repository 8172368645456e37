"""flightos: an onboard runtime for satellites on embedded Linux.

The public SDK for mission-service authors is everything importable from this module::

    from flightos import Service, command, periodic, subscribe, Parameter, Severity, Message, Options
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flightos.bus.errors import (
    AccessDenied,
    BadArguments,
    CommandError,
    DeadlineExceeded,
    PublishDenied,
    QueueFull,
    ServiceFailed,
    ServiceUnavailable,
    UnknownCommand,
    UnknownService,
)
from flightos.sdk.decorators import command, periodic, subscribe
from flightos.sdk.jobs import JobContext, Processor
from flightos.sdk.options import Options, OptionsError
from flightos.sdk.parameters import Parameter
from flightos.sdk.service import Message, Service
from flightos.sdk.severity import Severity
from flightos.sdk.store import Store, StoreError

if TYPE_CHECKING:
    from flightos.sdk.devices import DeviceError, DeviceNotGranted, DeviceTimeout

_DEVICE_NAMES = ("DeviceError", "DeviceNotGranted", "DeviceTimeout")
"""Exported lazily: they live in the HAL's device layer, which ``import flightos`` does not load."""


def __getattr__(name: str) -> Any:
    if name in _DEVICE_NAMES:
        from flightos.sdk import devices

        return getattr(devices, name)
    raise AttributeError(f"module 'flightos' has no attribute {name!r}")


__version__ = "0.1.0"
"""The one place the version is written: pyproject.toml reads it from here (setuptools dynamic version)."""

__all__ = [
    "AccessDenied",
    "BadArguments",
    "CommandError",
    "DeadlineExceeded",
    "DeviceError",
    "DeviceNotGranted",
    "DeviceTimeout",
    "JobContext",
    "Message",
    "Options",
    "OptionsError",
    "Parameter",
    "Processor",
    "PublishDenied",
    "QueueFull",
    "Service",
    "ServiceFailed",
    "ServiceUnavailable",
    "Severity",
    "Store",
    "StoreError",
    "UnknownCommand",
    "UnknownService",
    "__version__",
    "command",
    "periodic",
    "subscribe",
]
