"""Faults of the simulated devices, injected from outside the service that uses them (``flightos inject``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hal.devices.sim.bench import SimBench
from hal.injection import FaultArgumentError

DEVICE_FAULTS = {
    "i2c-nack": "an I2C chip stops acknowledging its address: device=NAME (every transfer fails with ENXIO)",
    "i2c-hang": "an I2C bus hangs with SDA held low: device=NAME (every transfer times out, ETIMEDOUT)",
    "uart-bit-errors": "bit errors on a UART link: device=NAME rate=R (fraction of bytes hit, default 0.01)",
    "uart-dropout": "a UART link carries nothing: device=NAME (reads time out)",
    "gpio-stuck": "a GPIO line stuck at a level: device=NAME value=0|1",
    "can-bus-off": "a CAN controller goes bus-off: device=NAME (sends fail with ENETDOWN)",
    "device-clear": "clear the injected fault of a device: device=NAME",
}
"""The device faults ``flightos inject`` knows, with their arguments."""

_KIND = {
    "i2c-nack": "i2c",
    "i2c-hang": "i2c",
    "uart-bit-errors": "uart",
    "uart-dropout": "uart",
    "gpio-stuck": "gpio",
    "can-bus-off": "can",
}


def inject(bench: SimBench, fault: str, args: Mapping[str, Any]) -> str:
    """Inject one of :data:`DEVICE_FAULTS` into a device a service has opened; return what was done."""
    if fault not in DEVICE_FAULTS:
        raise FaultArgumentError(f"unknown device fault {fault!r} (known: {', '.join(DEVICE_FAULTS)})")
    extra = sorted(set(args) - {"device", "rate", "value"})
    if extra:
        raise FaultArgumentError(f"{fault}: unknown argument {extra[0]!r} ({DEVICE_FAULTS[fault]})")
    device = args.get("device")
    opened = bench.devices()
    if not isinstance(device, str) or not device:
        raise FaultArgumentError(f"{fault} needs device=NAME (opened so far: {', '.join(opened) or 'none'})")
    if device not in opened:
        raise FaultArgumentError(
            f"no simulated device {device!r} in this runtime (opened so far: "
            f"{', '.join(opened) or 'none'}; a device appears once a service opens it)"
        )
    if fault == "device-clear":
        bench.set_fault(device, None)
        return f"faults of {device} cleared"
    if opened[device] != _KIND[fault]:
        raise FaultArgumentError(f"{fault}: {device} is declared kind = {opened[device]!r}, not {_KIND[fault]!r}")
    state: dict[str, Any] = {"fault": fault}
    if fault == "uart-bit-errors":
        rate = args.get("rate", 0.01)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 < rate <= 1:
            raise FaultArgumentError(f"rate: expected a fraction in (0, 1], got {rate!r}")
        state["rate"] = float(rate)
    if fault == "gpio-stuck":
        value = args.get("value")
        if value not in (0, 1) or isinstance(value, bool):
            raise FaultArgumentError(f"value: expected 0 or 1, got {value!r}")
        state["value"] = value
    bench.set_fault(device, state)
    detail = f" (rate {state['rate']:g})" if "rate" in state else f" at {state['value']}" if "value" in state else ""
    return f"{fault} on {device}{detail}"
