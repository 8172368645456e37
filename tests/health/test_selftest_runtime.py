"""In a running kernel: a silent self-test worker is restarted as its own fault, and a target's speed factor
scales the limits."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.runtimes import kernel_events, make_runtime


def _worker(kernel_pid: int) -> psutil.Process:
    return next(
        p for p in psutil.Process(kernel_pid).children() if "flightos.kernel.health.selftest" in " ".join(p.cmdline())
    )


async def test_a_silent_selftest_worker_is_restarted_and_no_core_is_blamed() -> None:
    """The worker stops answering for every CPU: SELFTEST_WORKER_FAULT, a new worker, every core still HEALTHY."""
    fast = [
        "cores.selftest_period_s=0.5",
        "cores.selftest_timeout_s=0.5",
        "cores.boot_grace_s=0",
        "health.speed_factor=1",
    ]
    async with make_runtime(["test"], fast) as rt:
        assert rt.client is not None and rt.proc is not None
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        await rt.wait_until(
            lambda s: s["health"]["selftest_worker_start_s"] is not None,
            timeout=10,
            what="the self-test worker to be ready",
        )
        old = _worker(rt.proc.pid)
        os.kill(old.pid, signal.SIGSTOP)
        fault = await rt.client.wait_for(
            "ev.kernel", lambda e: e.payload.get("name") == "SELFTEST_WORKER_FAULT", timeout=15, sub=events
        )
        assert "answered for no CPU" in fault.payload["data"]["reason"]
        st = await rt.wait_until(
            lambda s: s["health"]["selftest_worker_start_s"] is not None, timeout=10, what="the new worker to be ready"
        )
        assert _worker(rt.proc.pid).pid != old.pid
        assert all(c["state"] == "HEALTHY" for c in st["cores"]), st["cores"]
        assert "event_id=1503" not in rt.log_tail(100_000), "a core was blamed for the worker's silence"


async def test_a_targets_speed_factor_scales_heartbeat_limits() -> None:
    """health.speed_factor = 3: the test service's heartbeat limit is 3 x period x misses, announced as BOARD_SPEED."""
    async with make_runtime(["test"], ["health.speed_factor=3"]) as rt:
        st = await rt.status()
        assert st["health"]["speed_factor"] == 3
        row = next(s for s in st["services"] if s["name"] == "test")
        assert row["heartbeat_limit_ms"] == pytest.approx(0.2 * 3 * 3 * 1000)  # FAST: 0.2 s x 3 misses, x 3
        assert "board speed factor 3 (health.speed_factor)" in rt.log_tail(100_000)
