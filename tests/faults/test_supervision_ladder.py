"""Fault campaign: supervision under faults outside the happy path (issue 12, items 1, 4 and 10).

A critical service is never given up; a board reset restarts everything; an exit says why; a kernel
that could not run is not a reason to kill a service.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from flightos.bus.envelope import Envelope
from flightos.bus.errors import ServiceFailed
from flightos.testing import RuntimeProcess
from tests.runtimes import kernel_events, make_runtime


def kernel_event(name: str, service: str | None = None) -> Callable[[Envelope], bool]:
    """Match a kernel event by name (and service, if given)."""
    return lambda e: (
        e.payload.get("name") == name and (service is None or e.payload.get("data", {}).get("service") == service)
    )


async def _block_starts(rt: RuntimeProcess, blocker: Path) -> None:
    """Make every later start of ``test`` fail (the drill's file exists), then crash the running one."""
    assert rt.client is not None
    await asyncio.to_thread(blocker.write_text, "full disk stand-in")
    with pytest.raises(ServiceFailed):
        await rt.client.call("test", "crash", {"code": 3})


async def test_critical_service_is_never_failed_and_comes_back_when_the_cause_clears(tmp_path: Path) -> None:
    """Past the intensity limit a critical service is retried, not FAILED; it is READY soon after the cause clears."""
    blocker = tmp_path / "blocker"
    retry_s = 1.0
    overrides = [
        'services.test.criticality="critical"',
        f'services.test.options.fail_start_while="{blocker}"',
        "restart.max_restarts=2",
        "restart.backoff_initial_s=0.1",
        "restart.backoff_jitter=0.0",
        f"restart.critical_retry_s={retry_s}",
        "watchdog.enabled=false",
    ]
    async with make_runtime(["test"], overrides) as rt:
        assert rt.client is not None
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        await _block_starts(rt, blocker)
        escalated = await rt.client.wait_for(
            "ev.kernel", kernel_event("SERVICE_ESCALATED", "test"), timeout=20, sub=events
        )
        assert "start refused by the drill" in escalated.payload["data"]["cause"]
        for _ in range(2):  # it keeps being retried at the slow rate, never given up
            ev = await rt.client.wait_for(
                "ev.kernel", kernel_event("SERVICE_RESTART_SCHEDULED", "test"), timeout=10, sub=events
            )
            assert ev.payload["data"]["escalated"] is True
            assert ev.payload["data"]["delay_s"] == pytest.approx(retry_s)
            assert (await rt.service("test"))["state"] != "FAILED"
        loop = asyncio.get_running_loop()
        cleared = loop.time()
        blocker.unlink()
        await rt.wait_ready("test", timeout=retry_s + 10)
        assert loop.time() - cleared <= retry_s + 5
        assert (await rt.client.call("test", "ping"))["reply"] == "pong"


async def test_exit_event_names_the_cause(tmp_path: Path) -> None:
    """SERVICE_EXITED says what broke, not only the exit code."""
    blocker = tmp_path / "blocker"
    overrides = [f'services.test.options.fail_start_while="{blocker}"', "restart.backoff_initial_s=5"]
    async with make_runtime(["test"], overrides) as rt:
        assert rt.client is not None
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        await _block_starts(rt, blocker)
        await rt.client.wait_for("ev.kernel", kernel_event("SERVICE_EXITED", "test"), timeout=10, sub=events)
        failed_start = await rt.client.wait_for(
            "ev.kernel", kernel_event("SERVICE_EXITED", "test"), timeout=20, sub=events
        )
        message = failed_start.payload["message"]
        assert "code 70" in message and f"start refused by the drill: {blocker} exists" in message
        blocker.unlink()


async def test_board_reset_restarts_a_failed_service(tmp_path: Path) -> None:
    """A (simulated) watchdog reset starts every service again, a FAILED one included, with a clean history."""
    blocker = tmp_path / "blocker"
    overrides = [
        f'services.test.options.fail_start_while="{blocker}"',
        "restart.max_restarts=1",
        "restart.backoff_initial_s=0.1",
        "watchdog.timeout_s=1.0",
        "watchdog.pet_period_s=0.2",
    ]
    async with make_runtime(["test", "housekeeping"], overrides) as rt:
        assert rt.client is not None
        events = await kernel_events(rt.client)
        await rt.client.call("kernel", "ping")
        await _block_starts(rt, blocker)
        await rt.wait_until(lambda st: _row(st, "test")["state"] == "FAILED", timeout=20, what="test FAILED")
        blocker.unlink()  # the cause clears, but a FAILED service waits for something to start it
        await rt.client.call("kernel", "block", {"seconds": 1.6}, timeout=10)  # the watchdog expires meanwhile
        reset = await rt.client.wait_for("ev.kernel", kernel_event("BOARD_RESET_RESTART"), timeout=20, sub=events)
        assert "test" in reset.payload["data"]["services"]
        st = await rt.wait_ready("test", timeout=20)
        assert _row(st, "test")["state"] == "READY"
        assert (await rt.client.call("test", "ping"))["reply"] == "pong"


async def test_a_stalled_kernel_does_not_kill_services_as_hung() -> None:
    """The kernel stopped for 3 hang timeouts, then resumed: the services kept their processes."""
    async with make_runtime(["test"], ["watchdog.enabled=false"]) as rt:
        assert rt.client is not None and rt.proc is not None
        before = await rt.service("test")
        limit_s = before["heartbeat_limit_ms"] / 1000
        os.kill(rt.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(3 * limit_s)  # the fault itself: the kernel gets no CPU for this long
        finally:
            os.kill(rt.proc.pid, signal.SIGCONT)
        await rt.client.call("kernel", "ping", timeout=10)
        # A wrong verdict would come within one hang timeout of the resume: let several pass, busy.
        await rt.client.call("test", "sleep", {"seconds": 3 * limit_s}, timeout=10)
        after = await rt.service("test")
        assert after["pid"] == before["pid"] and after["restarts"] == 0


def _row(st: dict[str, object], name: str) -> dict[str, object]:
    rows = st["services"]
    assert isinstance(rows, list)
    return next(r for r in rows if r["name"] == name)
