"""Faults injected into the simulated board reach real processes, and the kernel recovers from them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flightos import BadArguments, ServiceUnavailable
from flightos.testing import RuntimeProcess
from tests.runtimes import kernel_events, make_runtime


async def test_sefi_hangs_the_core_and_the_service_restarts_elsewhere(runtime: RuntimeProcess) -> None:
    """A SEFI on the test service's core degrades it; the service restarts on a healthy core and answers."""
    c = runtime.client
    assert c is not None
    before = await runtime.service("test")
    core = before["cores"][0]
    events = await kernel_events(c)
    await c.call("kernel", "ping")
    res = await c.call("kernel", "inject", {"fault": "sefi", "core": core})
    assert res["cores"][core] == "hung"
    changed = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "CORE_STATE_CHANGED", timeout=5, sub=events)
    assert changed.payload["data"]["new"] == "DEGRADED" and "hung" in changed.payload["data"]["reason"]
    moved = await c.wait_for(
        "ev.kernel",
        lambda e: e.payload["name"] == "SERVICE_MIGRATED" and e.payload["data"]["service"] == "test",
        timeout=5,
        sub=events,
    )
    assert core not in moved.payload["data"]["to_cores"] and moved.payload["data"]["restarted"] is True
    await c.wait_for(
        "ev.kernel",
        lambda e: e.payload["name"] == "SERVICE_READY" and e.payload["data"]["service"] == "test",
        timeout=5,
        sub=events,
    )
    assert (await c.call("test", "ping"))["pid"] != before["pid"]
    st = await runtime.status()
    assert next(k for k in st["cores"] if k["id"] == core)["hw_state"] == "hung"
    await c.call("kernel", "inject", {"fault": "reset", "core": core})
    st = await runtime.status()
    assert next(k for k in st["cores"] if k["id"] == core)["hw_state"] == "ok"


async def test_bad_injections_are_typed_errors(runtime: RuntimeProcess) -> None:
    """Unknown faults and bad arguments are refused with a message naming the problem."""
    c = runtime.client
    assert c is not None
    with pytest.raises(BadArguments, match="unknown fault 'meteor'"):
        await c.call("kernel", "inject", {"fault": "meteor"})
    with pytest.raises(BadArguments, match="core"):
        await c.call("kernel", "inject", {"fault": "sefi", "core": 99})
    with pytest.raises(BadArguments, match="count: expected an integer"):
        await c.call("kernel", "inject", {"fault": "seu", "count": "many"})


async def test_injection_needs_a_simulated_board() -> None:
    """On a real-board backend, inject says it needs a simulator instead of pretending."""
    async with make_runtime(["test"], target="linux") as rt:
        with pytest.raises(ServiceUnavailable, match="simulated board"):
            await rt.client.call("kernel", "inject", {"fault": "seu"})  # type: ignore[union-attr]


async def test_scenario_file_drives_faults_on_schedule(tmp_path: Path) -> None:
    """A wall-time scenario hangs a core, then resets it; each step is an event, in order."""
    path = tmp_path / "drill.toml"
    path.write_text(
        '[scenario]\nname = "drill"\ntime = "wall"\n'
        '[[event]]\nat = 1.5\naction = "sefi"\ncore = 3\n'
        '[[event]]\nat = 2.0\naction = "reset_core"\ncore = 3\n'
    )
    async with make_runtime(["test"], scenario=path) as rt:
        c = rt.client
        assert c is not None
        steps = await kernel_events(c)
        done = await c.wait_for(
            "ev.kernel",
            lambda e: e.payload["name"] == "SCENARIO_STEP" and "complete" in e.payload["message"],
            timeout=10,
            sub=steps,
        )
        assert done.payload["data"]["scenario"] == "drill"
        assert all(k["hw_state"] == "ok" for k in (await rt.status())["cores"])
        log = rt.log_path.read_text()
    assert (
        log.index("event[0] sefi at 1.5 s")
        < log.index("core 3: HEALTHY -> DEGRADED")
        < log.index("event[1] reset_core")
    )


async def test_an_absurd_upset_burst_is_refused(runtime: RuntimeProcess) -> None:
    """A burst too large to inject without stalling the kernel is refused with the limit named."""
    with pytest.raises(BadArguments, match=r"count: expected 1\.\.10000"):
        await runtime.client.call("kernel", "inject", {"fault": "seu", "count": 10**9})  # type: ignore[union-attr]


async def _cli(rt: RuntimeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``flightos --runtime-dir RT ARGS`` as a user runs it, off the event loop."""
    argv = [sys.executable, "-m", "flightos.cli.main", "--runtime-dir", str(rt.runtime_dir), *args]
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


async def test_injected_upsets_show_at_the_next_scrub_as_an_event_and_in_status() -> None:
    """`flightos inject seu count=100` says when the scrub comes; the scrub is an event; status counts 100.

    Before: no event, and `edac.corrected` was still 0 (nor in status at all) ten seconds later.
    """
    async with make_runtime(["test"], overrides=["hal.scrub_period_s=3"]) as rt:
        c = rt.client
        assert c is not None
        events = await kernel_events(c)
        await c.call("kernel", "ping")
        injected = await _cli(rt, "inject", "seu", "count=100")
        assert injected.returncode == 0, injected.stderr
        assert "100 bit flip(s); EDAC (rs) sees them at the next scrub" in injected.stdout
        assert "hal.scrub_period_s = 3" in injected.stdout
        scrub = await c.wait_for(
            "ev.kernel",
            lambda e: e.payload["name"] == "HAL_EVENT" and e.payload["data"]["kind"] == "edac_scrub",
            timeout=15,
            sub=events,
        )
        assert scrub.payload["severity_name"] == "LOW"
        assert scrub.payload["message"] == "EDAC scrub: 100 word(s) corrected, 0 uncorrectable"
        status = await _cli(rt, "status", "--json")
        edac = json.loads(status.stdout)["health"]["edac"]
        assert edac["corrected"] == 100 and edac["uncorrected"] == 0
        assert edac["code"] == "rs" and edac["scrub_period_s"] == 3.0
        text = (await _cli(rt, "status")).stdout
        assert "edac 100 corrected, 0 uncorrectable (rs; scrub every 3 s" in text
        burst = await _cli(rt, "inject", "seu", "address=7", "bits=[0,8]")  # two nibbles of one RS codeword
        assert "2 bit flip(s) in word 7" in burst.stdout, burst.stderr
        bad = await c.wait_for(
            "ev.kernel",
            lambda e: e.payload["name"] == "HAL_EVENT" and e.payload["data"]["kind"] == "edac_scrub",
            timeout=15,
            sub=events,
        )
        assert bad.payload["severity_name"] == "HIGH" and bad.payload["data"]["uncorrected"] == 1
