"""Issue-4 figures: degradation -> services moved (ms) for 1 and 8 services on the failing core, and the
cost of the monitoring loop.

The kernel's own event timestamps are used: from HAL_FAULT_INJECTED (a core failure injected into
the simulated board) to the last SERVICE_MIGRATED of the services that were on that core. The
budget is one monitoring period (default 0.5 s): detection waits for the next tick by design.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.idle import BASE, EXTRA, install_plugins
from bench.report import Budget, Row
from bench.runtime import running
from bench.stats import median

PERIOD_S = 0.5
MOVE_BUDGET = Budget("value", "<=", PERIOD_S * 1000, unit="ms")


async def one_trial(services: list[str], site: Path | None) -> tuple[float, int]:
    """Start a runtime with every service pinned to core 2, fail core 2, return (ms to last move, moves)."""
    overrides = [f"services.{s}.cores=[2]" for s in services] + [f"services.{s}.enabled=true" for s in services]
    env = {"PYTHONPATH": str(site)} if site else None
    async with running(services=services, overrides=overrides, env=env) as rt:
        c = rt.client
        assert c is not None
        events = c.subscriber("ev.kernel")
        await c.call("kernel", "ping")
        await c.call("kernel", "inject", {"fault": "core-fail", "core": 2})
        injected = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "HAL_FAULT_INJECTED", 10, events)
        last = injected
        for _ in services:
            last = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "SERVICE_MIGRATED", 10, events)
        return (last.utc_ns - injected.utc_ns) / 1e6, len(services)


async def tick_cost(site: Path | None) -> tuple[float, float]:
    """Mean monitoring tick (ms) with 8 services, and that as a % of one core at the default period."""
    env = {"PYTHONPATH": str(site)} if site else None
    async with running(services=BASE + EXTRA, env=env) as rt:
        assert rt.client is not None
        health = rt.client.subscriber("tm.kernel.health")
        snap = {}
        for _ in range(6):
            snap = (await rt.client.wait_for("tm.kernel.health", timeout=5, sub=health)).payload
        ms = float(snap["monitor"]["mean_tick_ms"])
        return ms, 100.0 * ms / 1000.0 / PERIOD_S


async def run_async(quick: bool) -> list[Row]:
    """Both migration figures and the monitoring cost."""
    trials = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="fos-bench-mig-") as tmp:
        how = install_plugins(Path(tmp))
        site = Path(tmp) / "site"
        one = [(await one_trial(["test"], None))[0] for _ in range(trials)]
        eight = [(await one_trial(BASE + EXTRA, site))[0] for _ in range(trials)]
        tick_ms, pct = await tick_cost(site)
    note = f"{trials} trials, kernel event timestamps; monitoring period {PERIOD_S} s"
    return [
        Row(
            "core failed -> 1 service moved (no restart)",
            median(one),
            "ms",
            budget=MOVE_BUDGET,
            note=f"{note}; each: " + ", ".join(f"{v:.0f}" for v in one),
        ),
        Row(
            "core failed -> 8 services moved (no restart)",
            median(eight),
            "ms",
            budget=MOVE_BUDGET,
            note=f"{note}; each: " + ", ".join(f"{v:.0f}" for v in eight) + f"; extra services by {how}",
        ),
        Row("monitoring tick with 8 services (mean)", tick_ms, "ms", note="read board, evidence, mode, governor"),
        Row(
            "monitoring loop cost at the 0.5 s period",
            pct,
            "% of a core",
            note="mean wall time of a tick over the period: an upper bound on its CPU",
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    """Run the figures and return their rows."""
    return asyncio.run(run_async(quick))
