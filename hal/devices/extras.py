"""Lazy imports of the optional hardware libraries (``pip install 'flightos[devices]'``)."""

from __future__ import annotations

import importlib
from typing import Any

from hal.devices.errors import MissingExtra


def load(module: str, *, device: str, kind: str, package: str) -> Any:
    """Import ``module`` when a device is opened (never at import time), or raise MissingExtra naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(device, kind, module, package) from None
