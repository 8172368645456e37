"""A simulated I²C temperature sensor (TMP102 register map) whose reading follows a physical model.

The sensed plate relaxes towards the simulated board's radiator temperature with time constant
``TAU_S``; while its heater GPIO line is on, towards ``HEATER_RISE_C`` above it. Injected faults:
``i2c-nack`` (every transfer ENXIO) and ``i2c-hang`` (every transfer times out).
"""

from __future__ import annotations

import errno
import math
import time

from hal.devices.errors import DeviceError, DeviceTimeout
from hal.devices.sim.bench import SimBench

TAU_S = 8.0
"""Thermal time constant of the sensed plate, in seconds."""
HEATER_RISE_C = 20.0
"""Steady-state rise of the plate over ambient with its heater on."""
LSB_C = 0.0625
"""TMP102: one count of the 12-bit temperature register."""
RESET_REGISTERS = {1: b"\x60\xa0", 2: b"\x4b\x00", 3: b"\x50\x00"}
"""TMP102 power-on values of the configuration, T_low (75 °C) and T_high (80 °C) registers."""


def encode_c(celsius: float) -> bytes:
    """A temperature as the TMP102's 12-bit, left-justified two's-complement register."""
    counts = max(-2048, min(2047, round(celsius / LSB_C)))
    return ((counts & 0xFFF) << 4).to_bytes(2, "big")


def decode_c(raw: bytes) -> float:
    """The inverse of :func:`encode_c` (what a driver of a real TMP102 does)."""
    counts = int.from_bytes(raw[:2], "big") >> 4
    return (counts - 4096 if counts & 0x800 else counts) * LSB_C


class SimTempSensor:
    """A TMP102-like sensor at ``address``; its plate is warmed by the GPIO device named ``heater``."""

    def __init__(self, name: str, address: int, bench: SimBench, timeout_s: float, heater: str = "") -> None:
        self.name, self.address, self.bench, self.timeout_s, self.heater = name, address, bench, timeout_s, heater
        self._registers = dict(RESET_REGISTERS)
        bench.register(name, "i2c")

    def _faults(self) -> None:
        fault = self.bench.fault(self.name)
        kind = fault and fault["fault"]
        if kind == "i2c-nack":
            raise DeviceError(self.name, f"address 0x{self.address:02x} not acknowledged", errno.ENXIO)
        if kind == "i2c-hang":
            time.sleep(self.timeout_s)  # the adapter waits out its timeout on a bus whose SDA is held low
            raise DeviceTimeout(self.name, f"bus hung: no transfer completed within {self.timeout_s:g} s")

    def temperature_c(self) -> float:
        """Advance the plate's model to now and return its temperature."""
        now = time.monotonic()
        ambient = self.bench.ambient_c()
        state = self.bench.model(self.name) or {"t": now, "c": ambient}
        target = ambient + (HEATER_RISE_C if self.heater and self.bench.line(self.heater) else 0.0)
        dt = max(0.0, now - float(state["t"]))
        celsius = target + (float(state["c"]) - target) * math.exp(-dt / TAU_S)
        self.bench.set_model(self.name, {"t": now, "c": celsius})
        return celsius

    def read(self, register: int, length: int) -> bytes:
        """Registers 0 (temperature), 1 (configuration), 2 (T_low), 3 (T_high); the pointer wraps at 4."""
        self._faults()
        out = b""
        reg = register & 0x03
        while len(out) < length:
            out += encode_c(self.temperature_c()) if reg == 0 else self._registers[reg]
            reg = (reg + 1) & 0x03
        return out[:length]

    def write(self, register: int, data: bytes) -> None:
        """Set configuration or a limit; the temperature register is read-only (ignored, as on the part)."""
        self._faults()
        reg = register & 0x03
        if reg and data:
            self._registers[reg] = (bytes(data) + self._registers[reg])[:2]

    def close(self) -> None:
        """Nothing to release."""
