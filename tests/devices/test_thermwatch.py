"""thermwatch on a running simulated runtime: it reads the I²C plate, drives the GPIO heater, reports over
the UART radio, and survives every device fault ``flightos inject`` can give it, saying which device failed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from flightos.client import kernel_pid
from flightos.testing import RuntimeProcess
from flightos.testing.bus import Bus
from hal.devices.sim import SimBench
from services.thermwatch import frames
from services.thermwatch.events import ThermwatchEvent
from tests.runtimes import make_runtime


@pytest_asyncio.fixture
async def plant() -> AsyncIterator[tuple[RuntimeProcess, Bus]]:
    """A sim-devices runtime running thermwatch at 5 Hz, with a bus that has seen it ready."""
    overrides = ["services.thermwatch.params.rate_hz=5", "services.thermwatch.heartbeat_period_s=0.2"]
    async with make_runtime(["thermwatch"], overrides, target="sim-devices") as rt:
        assert rt.client is not None
        bus = Bus(rt.client)
        await bus.call("kernel", "ping")  # the subscription is live once a round trip is done
        await rt.wait_ready("thermwatch")
        try:
            yield rt, bus
        finally:
            bus.close()


async def inject(rt: RuntimeProcess, *argv: str, code: int = 0) -> str:
    """``flightos inject ...`` as a user types it; its output line (its error line when ``code`` is not 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flightos.cli.main",
        "--runtime-dir",
        str(rt.runtime_dir),
        "inject",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == code, err.decode()
    return (out if code == 0 else err).decode().strip()


async def fault_event(bus: Bus, event: ThermwatchEvent, device: str, timeout: float = 10.0) -> dict[str, Any]:
    env = await bus.wait_for(
        "ev.thermwatch",
        lambda p: p["id"] == event and p["data"]["device"] == device,
        timeout,
        what=f"{event.name} for {device}",
    )
    data: dict[str, Any] = env.payload["data"]
    return data


async def test_thermwatch_heats_the_plate_and_reports_over_the_radio(plant: tuple[RuntimeProcess, Bus]) -> None:
    rt, bus = plant
    await bus.call("thermwatch", "set_param", {"name": "setpoint_c", "value": 85.0})
    on = await bus.telemetry(
        "tm.thermwatch.status",
        lambda p: p["heater"] == 1 and p["temp_c"] is not None,
        what="the heater on, with a reading",
    )
    warmer = await bus.telemetry(
        "tm.thermwatch.status",
        lambda p: p["temp_c"] >= on["temp_c"] + 1.0,
        what=f"the plate 1 C above {on['temp_c']} C",
    )
    assert warmer["heater"] == 1 and warmer["echo_ok"] >= 1 and warmer["faults"] == {}
    await bus.call("thermwatch", "set_param", {"name": "setpoint_c", "value": -40.0})
    off = await bus.wait_for(
        "ev.thermwatch",
        lambda p: p["id"] == ThermwatchEvent.HEATER_SWITCHED and p["data"]["heater"] == 0,
        what="the heater switched off",
    )
    assert off.payload["data"]["temp_c"] > -40
    sent = SimBench(rt.runtime_dir, kernel_pid(rt.runtime_dir) or 0).transcript("radio")  # what ground heard
    reports = [sent[i : i + frames.SIZE] for i in range(0, len(sent) - frames.SIZE + 1, frames.SIZE)]
    assert reports and all(frames.intact(f) for f in reports)
    assert any(frames.decode(f)[2] == 1 for f in reports)


async def test_device_faults_are_typed_events_and_never_crash_the_service(plant: tuple[RuntimeProcess, Bus]) -> None:
    rt, bus = plant
    assert (await inject(rt, "i2c-nack", "device=plate")).startswith("injected i2c-nack on plate (core 0: ok")
    await bus.event("HAL_FAULT_INJECTED", fault="i2c-nack")  # the kernel took it: it is on the run's record
    nack = await fault_event(bus, ThermwatchEvent.DEVICE_FAULT, "plate")
    assert (nack["errno"], nack["kind"]) == (6, "DeviceError") and "not acknowledged" in nack["error"]
    status = await bus.call("thermwatch", "status", {})  # what docs/devices.md says to look at after an inject
    assert status["faults"]["plate"]["errno"] == 6, status
    await bus.telemetry(
        "tm.thermwatch.status",
        lambda p: p["temp_c"] is None and p["heater"] == 0,
        what="no reading and the heater off (never heat blind)",
    )
    await inject(rt, "device-clear", "device=plate")
    await fault_event(bus, ThermwatchEvent.DEVICE_RECOVERED, "plate")

    await bus.call("thermwatch", "set_param", {"name": "setpoint_c", "value": 85.0})
    await inject(rt, "gpio-stuck", "device=heater", "value=0")
    stuck = await fault_event(bus, ThermwatchEvent.DEVICE_FAULT, "heater")
    assert stuck["errno"] == 5 and "stuck at 0" in stuck["error"]

    await inject(rt, "uart-dropout", "device=radio")
    silent = await fault_event(bus, ThermwatchEvent.DEVICE_FAULT, "radio")
    assert (silent["errno"], silent["kind"]) == (110, "DeviceTimeout")

    refused = await inject(rt, "uart-dropout", "device=plate", code=1)
    assert refused == "flightos: bad_arguments: uart-dropout: plate is declared kind = 'i2c', not 'uart'"
    row = await rt.service("thermwatch")
    assert row["state"] == "READY" and row["restarts"] == 0
