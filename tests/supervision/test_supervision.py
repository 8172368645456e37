"""Supervision with real processes: crashes, hangs, crash loops, and the kernel's own death."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest

from flightos.bus.envelope import Envelope
from flightos.bus.errors import ServiceFailed, ServiceUnavailable
from flightos.testing import RuntimeProcess, active, eventually
from tests.runtimes import kernel_events, make_runtime


def is_event(name: str, service: str) -> Callable[[Envelope], bool]:
    """Match a kernel event by name and service."""
    return lambda e: e.payload.get("name") == name and e.payload["data"].get("service") == service


async def test_sigkill_service_is_restarted_and_ready(runtime: RuntimeProcess) -> None:
    """A SIGKILLed service comes back as a new process that answers commands."""
    assert runtime.client is not None
    before = await runtime.service("test")
    events = await kernel_events(runtime.client)
    os.kill(before["pid"], signal.SIGKILL)
    ready = await runtime.client.wait_for("ev.kernel", is_event("SERVICE_READY", "test"), timeout=10, sub=events)
    assert ready.payload["data"]["incarnation"] == before["incarnation"] + 1
    pong = await runtime.client.call("test", "ping")
    assert pong["pid"] != before["pid"]
    row = await runtime.service("test")
    assert row["restarts"] == 1 and row["last_exit"] == -signal.SIGKILL


async def test_sigstop_is_declared_hung_within_the_limit_and_restarted(runtime: RuntimeProcess) -> None:
    """A stopped service is declared hung after period x misses x speed factor (+100 ms at most), then restarted."""
    assert runtime.client is not None
    before = await runtime.service("test")
    limit_ms = before["heartbeat_limit_ms"]
    assert limit_ms == pytest.approx(600 * (await runtime.status())["health"]["speed_factor"])
    events = await kernel_events(runtime.client)
    await runtime.client.call("kernel", "ping")  # the subscription is live once a round trip is done
    loop = asyncio.get_running_loop()
    t_stop = loop.time()
    os.kill(before["pid"], signal.SIGSTOP)
    hung = await runtime.client.wait_for("ev.kernel", is_event("SERVICE_HUNG", "test"), timeout=10, sub=events)
    detected_ms = (loop.time() - t_stop) * 1000
    assert hung.payload["data"]["silent_ms"] >= limit_ms
    assert detected_ms <= limit_ms + 100, f"hang detected after {detected_ms:.0f} ms (limit {limit_ms} ms)"
    await runtime.client.wait_for("ev.kernel", is_event("SERVICE_READY", "test"), timeout=10, sub=events)
    assert (await runtime.client.call("test", "ping"))["pid"] != before["pid"]


async def test_crash_loop_backs_off_then_fails_and_spares_the_rest() -> None:
    """Crashing at every start: delays grow, the service goes FAILED, others keep running."""
    overrides = [
        "restart.backoff_initial_s=0.1",
        "restart.max_restarts=4",
        "restart.backoff_jitter=0.0",
        'services.test.restart="permanent"',
    ]
    async with make_runtime(["test", "housekeeping"], overrides) as rt:
        assert rt.client is not None
        hk_pid = (await rt.service("housekeeping"))["pid"]
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        delays: list[float] = []
        for _ in range(5):
            await rt.wait_ready("test", timeout=10)
            with pytest.raises(ServiceFailed):
                await rt.client.call("test", "crash", {"code": 3})
            ev = await rt.client.wait_for(
                "ev.kernel",
                lambda e: (
                    e.payload["name"] in ("SERVICE_RESTART_SCHEDULED", "SERVICE_FAILED")
                    and e.payload["data"].get("service") == "test"
                ),
                timeout=10,
                sub=events,
            )
            if ev.payload["name"] == "SERVICE_FAILED":
                break
            delays.append(ev.payload["data"]["delay_s"])
        assert delays == [0.0, 0.1, 0.2, 0.4]
        row = await rt.service("test")
        assert row["state"] == "FAILED" and "restarts" in row["reason"]
        with pytest.raises(ServiceUnavailable):
            await rt.client.call("test", "ping")
        hk = await rt.service("housekeeping")
        assert hk["state"] == "READY" and hk["pid"] == hk_pid
        assert (await rt.client.call("kernel", "ping"))["pong"] is True


async def test_temporary_service_is_not_restarted() -> None:
    """A temporary service that exits stays STOPPED."""
    async with make_runtime(["test"], ['services.test.restart="temporary"']) as rt:
        assert rt.client is not None
        with pytest.raises(ServiceFailed):
            await rt.client.call("test", "crash", {"code": 0})
        st = await rt.wait_until(lambda s: _row(s, "test")["state"] == "STOPPED", what="test STOPPED")
        assert _row(st, "test")["restarts"] == 0


async def test_kernel_sigkill_leaves_no_orphans() -> None:
    """SIGKILL the kernel: every service process and the fork server die within 2 s."""
    rt = make_runtime(["test", "housekeeping"])
    async with rt:
        st = await rt.status()
        pids = [s["pid"] for s in active(st)]
        assert rt.proc is not None
        rt.proc.kill()
        await eventually(
            lambda: [p for p in pids if _alive(p)],
            until=lambda alive: not alive,
            timeout=2.0,
            interval=0.02,
            what="service processes to end with the kernel",
        )
        # a new kernel in the same runtime directory adopts nothing stale and starts cleanly
        rt2 = RuntimeProcess("sim-radhard", services=["test"], base_dir=rt.workdir)
        rt2.runtime_dir = rt.runtime_dir
        rt2.state_dir = rt.state_dir
        async with rt2:
            assert rt2.client is not None
            assert (await rt2.client.call("test", "ping"))["reply"] == "pong"


def _row(status: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(s for s in status["services"] if s["name"] == name)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
