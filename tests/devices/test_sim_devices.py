"""The SDK over the simulated devices, in one process: grants, typed errors, the sensor's physics, faults."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flightos import DeviceError, DeviceNotGranted, DeviceTimeout
from flightos.config import target as tgt
from flightos.sdk.devices import DeviceGrants, Devices, MissingExtra
from hal.devices.sim import SimBench, inject
from hal.devices.sim.i2c import HEATER_RISE_C, TAU_S, decode_c, encode_c
from hal.injection import FaultArgumentError

KERNEL = os.getpid()


def devices(tmp_path: Path, service: str = "thermwatch", simulated: bool = True, **timeouts: float) -> Devices:
    """The devices sim-devices grants ``service``, simulated under ``tmp_path`` (timeouts shortened)."""
    tables = tgt.load("sim-devices").devices_for(service)
    for name, t in timeouts.items():
        tables[name]["timeout_s"] = t
    return Devices(DeviceGrants(service, tables, tmp_path, simulated, KERNEL))


def bench_at(tmp_path: Path) -> SimBench:
    """The shared state the devices of this "run" keep (this test process stands in for the kernel)."""
    return SimBench(tmp_path, KERNEL)


def test_tmp102_encoding_round_trips_to_the_part_resolution() -> None:
    for c in (-40.0, -0.0625, 0.0, 25.5, 85.0):
        assert decode_c(encode_c(c)) == c
    assert encode_c(25.0) == b"\x19\x00"  # the TMP102 datasheet's example


async def test_a_service_opens_only_what_the_target_grants_it(tmp_path: Path) -> None:
    devs = devices(tmp_path, service="housekeeping")
    with pytest.raises(DeviceNotGranted) as err:
        devs.i2c("plate")
    assert err.value.errno == errno.EACCES
    assert "not granted to service 'housekeeping'" in str(err.value) and "[devices.plate]" in str(err.value)
    with pytest.raises(DeviceError, match="declared kind = 'i2c', not 'uart'"):
        devices(tmp_path).uart("plate")


async def test_the_plate_warms_towards_ambient_plus_the_heater_rise(tmp_path: Path) -> None:
    devs = devices(tmp_path)
    bench = bench_at(tmp_path)
    ambient = bench.ambient_c()
    assert decode_c(await devs.i2c("plate").read(0x00, 2)) == pytest.approx(ambient, abs=0.0625)
    await devs.gpio("heater").set(1)
    # the model integrates from its last reading: put that reading 2 time constants back, at ambient
    bench.set_model("plate", {"t": time.monotonic() - 2 * TAU_S, "c": ambient})
    warmed = decode_c(await devs.i2c("plate").read(0x00, 2))
    assert warmed == pytest.approx(ambient + HEATER_RISE_C * (1 - 0.1353), abs=0.2)
    assert await devs.i2c("plate").read(0x01, 2) == b"\x60\xa0"  # the configuration register's reset value
    await devs.close()


async def test_i2c_nack_and_bus_hang_reach_the_service_as_typed_errors(tmp_path: Path) -> None:
    devs = devices(tmp_path, plate=0.2)
    plate = devs.i2c("plate")
    await plate.read(0, 2)  # opened: now a fault can be injected into it
    bench = bench_at(tmp_path)
    assert inject(bench, "i2c-nack", {"device": "plate"}) == "i2c-nack on plate"
    with pytest.raises(DeviceError) as err:
        await plate.read(0, 2)
    assert err.value.errno == errno.ENXIO and "address 0x48 not acknowledged" in str(err.value)
    inject(bench, "i2c-hang", {"device": "plate"})
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as hang:
        await plate.read(0, 2)
    assert hang.value.errno == errno.ETIMEDOUT and 0.2 <= time.monotonic() - start < 1.0
    inject(bench, "device-clear", {"device": "plate"})
    assert len(await plate.read(0, 2)) == 2
    await devs.close()


async def test_a_stuck_heater_line_fails_the_verified_set(tmp_path: Path) -> None:
    devs = devices(tmp_path)
    heater = devs.gpio("heater")
    await heater.set(1)
    assert await heater.get() == 1
    inject(bench_at(tmp_path), "gpio-stuck", {"device": "heater", "value": 0})
    with pytest.raises(DeviceError) as err:
        await heater.set(1)
    assert err.value.errno == errno.EIO and "stuck at 0" in str(err.value)
    await heater.set(1, verify=False)  # an unverified write does not notice
    assert await heater.get() == 0


async def test_the_radio_loops_back_and_keeps_a_transcript_through_its_faults(tmp_path: Path) -> None:
    devs = devices(tmp_path, radio=0.2)
    radio = devs.uart("radio")
    bench = bench_at(tmp_path)
    await radio.write(b"hello")
    assert await radio.read_exactly(5) == b"hello"
    inject(bench, "uart-bit-errors", {"device": "radio", "rate": 1.0})
    await radio.write(b"hello")
    garbled = await radio.read_exactly(5)
    assert all(bin(a ^ b).count("1") == 1 for a, b in zip(garbled, b"hello", strict=True))
    inject(bench, "uart-dropout", {"device": "radio"})
    await radio.write(b"hello")
    with pytest.raises(DeviceTimeout, match=r"0 of 5 bytes within 0\.2 s"):
        await radio.read_exactly(5)
    assert await radio.read(timeout=0.05) == b""
    assert bench.transcript("radio") == b"hello" * 3


async def test_can_loops_back_until_bus_off_and_spi_echoes(tmp_path: Path) -> None:
    devs = devices(tmp_path, canbus=0.2)
    bus = devs.can("canbus")
    await bus.send(0x123, b"\x01\x02")
    frame = await bus.recv()
    assert frame is not None and (frame.arbitration_id, frame.data) == (0x123, b"\x01\x02")
    inject(bench_at(tmp_path), "can-bus-off", {"device": "canbus"})
    with pytest.raises(DeviceError) as err:
        await bus.send(0x123, b"\x01")
    assert err.value.errno == errno.ENETDOWN and "bus-off" in str(err.value)
    with pytest.raises(DeviceError, match="at most 8 bytes"):
        await bus.send(0x1, bytes(9))
    assert await devs.spi("adc").transfer(b"\x9f\x00") == b"\x9f\x00"
    await devs.close()


@pytest.mark.parametrize(
    ("fault", "args", "message"),
    [
        ("i2c-melt", {"device": "plate"}, "unknown device fault 'i2c-melt'"),
        ("i2c-nack", {}, "i2c-nack needs device=NAME (opened so far: plate)"),
        ("i2c-nack", {"device": "ghost"}, "no simulated device 'ghost' in this runtime (opened so far: plate"),
        ("uart-dropout", {"device": "plate"}, "uart-dropout: plate is declared kind = 'i2c', not 'uart'"),
        ("i2c-nack", {"device": "plate", "core": 1}, "i2c-nack: unknown argument 'core'"),
    ],
)
async def test_a_bad_injection_names_what_is_wrong(
    tmp_path: Path, fault: str, args: dict[str, Any], message: str
) -> None:
    await devices(tmp_path).i2c("plate").read(0, 2)
    with pytest.raises(FaultArgumentError) as err:
        inject(bench_at(tmp_path), fault, args)
    assert str(err.value).startswith(message)


async def test_bad_fault_values_are_refused(tmp_path: Path) -> None:
    devs = devices(tmp_path)
    await devs.gpio("heater").get()
    await devs.uart("radio").write(b"x")
    with pytest.raises(FaultArgumentError, match=r"value: expected 0 or 1, got 2"):
        inject(bench_at(tmp_path), "gpio-stuck", {"device": "heater", "value": 2})
    with pytest.raises(FaultArgumentError, match=r"rate: expected a fraction in \(0, 1\], got 1.5"):
        inject(bench_at(tmp_path), "uart-bit-errors", {"device": "radio", "rate": 1.5})


async def test_hardware_without_the_extra_names_the_pip_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("smbus2", "serial", "gpiod", "spidev", "can"):
        monkeypatch.setitem(sys.modules, module, None)  # an import of it now fails, as when it is not installed
    devs = devices(tmp_path, simulated=False)
    for open_and_use, package in [
        (lambda: devs.i2c("plate").read(0, 2), "smbus2"),
        (lambda: devs.uart("radio").write(b"x"), "pyserial"),
        (lambda: devs.gpio("heater").get(), "gpiod"),
        (lambda: devs.spi("adc").transfer(b"x"), "spidev"),
        (lambda: devs.can("canbus").recv(0.01), "python-can"),
    ]:
        with pytest.raises(MissingExtra) as err:
            await open_and_use()
        assert err.value.package == package and "pip install 'flightos[devices]'" in str(err.value)
    await devs.close()


async def test_a_new_run_starts_with_fresh_devices_and_sweeps_a_dead_kernels(tmp_path: Path) -> None:
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    stale = SimBench(tmp_path, dead.pid)
    stale.register("plate", "i2c")
    stale.set_fault("plate", {"fault": "i2c-nack"})  # injected in a run whose kernel is gone
    assert len(await devices(tmp_path).i2c("plate").read(0, 2)) == 2
    assert not stale.root.exists() and bench_at(tmp_path).devices()["plate"] == "i2c"
