"""thermwatch: keeps a payload plate warm and reports it over the radio (the device layer, end to end).

Each period it reads the plate's TMP102 over I²C, switches the heater GPIO with hysteresis around the
set-point, sends a CRC'd report over the radio UART and checks the radio's loopback echo. A device that
fails raises one DEVICE_FAULT event (with its errno) and one DEVICE_RECOVERED when it works again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flightos import DeviceError, Parameter, Service, Severity, command, periodic
from services.thermwatch import frames
from services.thermwatch.events import ThermwatchEvent
from services.thermwatch.options import ThermwatchOptions


def tmp102_c(raw: bytes) -> float:
    """A TMP102 temperature register (12-bit, left-justified, 0.0625 °C per count) in °C."""
    counts = int.from_bytes(raw[:2], "big") >> 4
    return (counts - 4096 if counts & 0x800 else counts) * 0.0625


class Thermwatch(Service):
    """Plate thermal control over I²C and GPIO, with reports over a UART radio."""

    name = "thermwatch"
    options_schema = ThermwatchOptions
    setpoint_c = Parameter(30.0, min=-40.0, max=85.0, doc="keep the plate near this temperature")
    hysteresis_c = Parameter(1.0, min=0.1, max=10.0, doc="heater on below set-point - this, off above + this")
    rate_hz = Parameter(2.0, min=0.1, max=10.0, doc="control and report rate")

    async def on_start(self) -> None:
        cfg: ThermwatchOptions = self.config
        self.sensor = self.devices.i2c(cfg.sensor)
        self.heater = self.devices.gpio(cfg.heater)
        self.radio = self.devices.uart(cfg.radio)
        self.temp_c: float | None = None
        self.heater_level = 0
        self.seq = 0
        self.counts = {"reports": 0, "echo_ok": 0, "echo_bad": 0, "echo_missing": 0}
        self.faults: dict[str, dict[str, Any]] = {}

    async def _failed(self, device: str, exc: DeviceError) -> None:
        """Remember a device's fault; raise its event once, when it starts."""
        first = device not in self.faults
        self.faults[device] = {"errno": exc.errno, "error": str(exc)}
        if first:
            await self.event(
                f"{device} failed: {exc}",
                Severity.MEDIUM,
                event_id=ThermwatchEvent.DEVICE_FAULT,
                device=device,
                errno=exc.errno,
                error=str(exc),
                kind=type(exc).__name__,
            )

    async def _worked(self, device: str) -> None:
        if self.faults.pop(device, None) is not None:
            await self.event(
                f"{device} works again", Severity.INFO, event_id=ThermwatchEvent.DEVICE_RECOVERED, device=device
            )

    async def _read(self) -> float | None:
        try:
            temp = tmp102_c(await self.sensor.read(0x00, 2))
        except DeviceError as exc:
            await self._failed(self.sensor.name, exc)
            return None
        await self._worked(self.sensor.name)
        return temp

    async def _control(self) -> None:
        if self.temp_c is None:
            want = 0  # no reading: never heat blind
        elif self.temp_c < self.setpoint_c - self.hysteresis_c:
            want = 1
        elif self.temp_c > self.setpoint_c + self.hysteresis_c:
            want = 0
        else:
            want = self.heater_level
        try:
            await self.heater.set(want)
        except DeviceError as exc:
            await self._failed(self.heater.name, exc)
            with contextlib.suppress(DeviceError):  # report the level the line really has
                self.heater_level = await self.heater.get()
            return
        await self._worked(self.heater.name)
        if want != self.heater_level:
            self.heater_level = want
            await self.event(
                f"heater {'on' if want else 'off'}",
                Severity.INFO,
                event_id=ThermwatchEvent.HEATER_SWITCHED,
                heater=want,
                temp_c=self.temp_c,
            )

    async def _report(self) -> None:
        frame = frames.encode(self.seq, self.temp_c, self.heater_level)
        self.seq += 1
        try:
            await self.radio.write(frame)
            self.counts["reports"] += 1
            echo = await self.radio.read_exactly(len(frame))
        except DeviceError as exc:
            self.counts["echo_missing"] += 1
            await self._failed(self.radio.name, exc)
            return
        if echo != frame or not frames.intact(echo):
            self.counts["echo_bad"] += 1
            await self._failed(self.radio.name, DeviceError(self.radio.name, "echo corrupted (CRC mismatch)"))
            return
        self.counts["echo_ok"] += 1
        await self._worked(self.radio.name)

    @periodic(hz="rate_hz")
    async def tick(self) -> None:
        """Read, control, report, publish."""
        self.temp_c = await self._read()
        await self._control()
        await self._report()
        await self.publish("status", self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The plate's temperature, the heater, the radio's counts and the devices now failing."""
        return {
            "temp_c": self.temp_c,
            "heater": self.heater_level,
            "setpoint_c": self.setpoint_c,
            **self.counts,
            "faults": dict(self.faults),
        }

    @command()
    async def status(self) -> dict[str, Any]:
        """The latest reading, heater level, radio counts and device faults."""
        return self.snapshot()
