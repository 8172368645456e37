"""A test file written the way a user writes one, with the flightos pytest plugin (runs on sim or a board)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightos.testing.bus import Bus
from flightos.testing.faults import Faults

pytestmark = pytest.mark.flightos(
    services=["test", "housekeeping"],
    overrides=["services.test.heartbeat_period_s=0.2", "services.test.heartbeat_misses=3"],
)


async def test_command_and_telemetry(bus: Bus) -> None:
    """The test service answers, and housekeeping publishes its system report."""
    assert (await bus.call("test", "ping"))["reply"] == "pong"
    system = await bus.telemetry("tm.housekeeping.system", lambda p: "memory" in p, timeout=10)
    assert 0 <= system["memory"]["used_pct"] <= 100


async def test_a_killed_service_recovers(bus: Bus, faults: Faults) -> None:
    """Kill the test service: the kernel restarts it and it answers again."""
    old = await faults.kill("test")
    await bus.event("SERVICE_READY", service="test", timeout=10)
    assert (await bus.call("test", "ping"))["pid"] != old


async def test_a_hung_service_is_detected(bus: Bus, faults: Faults) -> None:
    """Stop heartbeats: the service is declared hung and restarted."""
    await faults.stop_heartbeats("test")
    hung = await bus.event("SERVICE_HUNG", service="test", timeout=5)
    assert hung.payload["data"]["silent_ms"] >= 600
    await bus.event("SERVICE_READY", service="test", timeout=10)


@pytest.mark.board("sim")
async def test_a_hung_core_moves_the_service(bus: Bus, faults: Faults) -> None:
    """On the simulator: a SEFI on the service's core moves it to a healthy core."""
    status = await bus.call("kernel", "status")
    core = next(s["cores"][0] for s in status["services"] if s["name"] == "test")
    await faults.sefi(core)
    moved = await bus.event("SERVICE_MIGRATED", service="test", timeout=5)
    assert core not in moved.payload["data"]["to_cores"]


@pytest.mark.board("rpi")
async def test_throttling_is_read_on_a_pi(bus: Bus) -> None:
    """On a real Raspberry Pi only: the HAL reports throttle flags (skipped elsewhere, with the reason)."""
    reading = await bus.telemetry("tm.hal.reading", timeout=5)
    assert reading["throttle"] is not None


async def test_a_timeout_explains_itself(bus: Bus) -> None:
    """Waiting for telemetry that never comes fails with the recent messages in the message."""
    with pytest.raises(AssertionError, match="the last messages seen"):
        await bus.telemetry("tm.test.never", timeout=0.5)


@pytest.mark.flightos(services=["ground", "test"])
async def test_the_ground_fixture_speaks_pus(ground: object, bus: Bus) -> None:
    """The ground fixture is a PUS client with a provisioned key: ping, then run a function."""
    from flightos.ground import mdb, pus

    assert await ground.ping() > 0  # type: ignore[attr-defined]
    fid = mdb.load().function_id("test", "record")
    assert await ground.function(fid, ["str"], ["plugin"]) == 1  # type: ignore[attr-defined]
    assert (await bus.call("test", "executions")) == {"plugin": 1}
    assert pus.TIMESTAMP_LEN == 7


SCENARIO = Path(__file__).with_name("sefi-then-reset.toml")


@pytest.mark.board("sim")
@pytest.mark.flightos(services=["test"], scenario=str(SCENARIO))
async def test_a_scenario_file_drives_the_run(bus: Bus) -> None:
    """A scenario named by the marker runs with the test: its steps arrive as kernel events."""
    done = await bus.wait_for(
        "ev.kernel",
        lambda p: p.get("name") == "SCENARIO_STEP" and "complete" in p["message"],
        timeout=10,
        what="the scenario to complete",
    )
    assert done.payload["data"]["scenario"] == "sefi-then-reset"


async def test_software_faults_hog_and_memory(bus: Bus, faults: Faults) -> None:
    """hog_core burns the host CPU behind a core; fill_memory grows the test service's RSS."""
    status = await bus.call("kernel", "status")
    before = next(s["rss_mb"] for s in status["services"] if s["name"] == "test")
    assert await faults.fill_memory(40) == 40
    await faults.hog_core(0, seconds=3)
    grown = await bus.telemetry(
        "tm.kernel.services",
        lambda p: next(s["rss_mb"] for s in p["services"] if s["name"] == "test") > before + 30,
        timeout=10,
        what="the test service's RSS to grow by 30 MB",
    )
    assert grown
