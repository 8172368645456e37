"""Figures 3 and 4: crash -> restarted and ready, and hang detection, timed from kernel events.

Times come from the envelopes of ``ev.kernel`` events (``mono_ns`` is CLOCK_MONOTONIC, shared by
every process on the board) against this process's clock read just before the kernel is asked
to signal the service; ``data.start_ms`` is the kernel's own spawn-to-ready figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from bench.report import Budget, Row
from bench.runtime import running
from bench.stats import median
from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import Subscriber
from flightos.testing.runtime import RuntimeProcess

RELAXED = ["restart.max_restarts=1000", "restart.backoff_initial_s=0"]
HB_PERIOD_S, HB_MISSES = 0.2, 3
HANG_SETTINGS = [f"services.test.heartbeat_period_s={HB_PERIOD_S}", f"services.test.heartbeat_misses={HB_MISSES}"]
CRASH_BUDGET = Budget("value", "<=", 100.0, goal=30.0, unit="ms")
HANG_BUDGET = Budget("value", "<=", HB_PERIOD_S * HB_MISSES * 1000 + 100, unit="ms")
EVENT_TIMEOUT_S = 15.0


class EventWatch:
    """Kernel events about one service, read from a subscriber known to be joined."""

    def __init__(self, sub: Subscriber, service: str) -> None:
        """Watch ``service``'s events on ``sub``."""
        self.sub = sub
        self.service = service
        self.backlog: list[Envelope] = []

    async def join(self) -> None:
        """Wait for the first kernel telemetry (1 Hz): proof the subscription reached the proxy."""
        await asyncio.wait_for(self._first("tm.kernel."), EVENT_TIMEOUT_S)

    async def _first(self, prefix: str) -> Envelope:
        """The first message under ``prefix``."""
        while True:
            for env in await self.sub.batches():
                if env.topic.startswith(prefix):
                    return env

    async def next(self, name: str) -> Envelope:
        """The next ``ev.kernel`` event ``name`` about the service (earlier ones are skipped)."""
        return await asyncio.wait_for(self._next(name), EVENT_TIMEOUT_S)

    async def _next(self, name: str) -> Envelope:
        """The next matching event, without a deadline."""
        while True:
            while self.backlog:
                env = self.backlog.pop(0)
                p = env.payload
                if env.topic == "ev.kernel" and p.get("name") == name and p["data"].get("service") == self.service:
                    return env
            self.backlog = await self.sub.batches()


@dataclass
class Restart:
    """One kill of the test service and the kernel's account of the restart."""

    kill_to_exited_ms: float
    exited_to_ready_ms: float
    kill_to_ready_ms: float
    start_ms: float
    utc_exited_to_ready_ms: float


async def watch(rt: RuntimeProcess) -> EventWatch:
    """A joined watcher of the test service's kernel events."""
    assert rt.client is not None
    w = EventWatch(rt.client.subscriber("ev.kernel", "tm.kernel.self"), "test")
    await w.join()
    return w


async def signal_test(rt: RuntimeProcess, sig: str) -> int:
    """Ask the kernel to signal the test service; return this process's clock just before asking."""
    assert rt.client is not None
    t0 = time.monotonic_ns()
    await rt.client.call("kernel", "kill", {"service": "test", "signal": sig})
    return t0


async def one_restart(rt: RuntimeProcess, w: EventWatch) -> Restart:
    """SIGKILL the test service; time the exit and the next incarnation's READY."""
    t0 = await signal_test(rt, "KILL")
    exited = await w.next("SERVICE_EXITED")
    ready = await w.next("SERVICE_READY")
    return Restart(
        (exited.mono_ns - t0) / 1e6,
        (ready.mono_ns - exited.mono_ns) / 1e6,
        (ready.mono_ns - t0) / 1e6,
        float(ready.payload["data"]["start_ms"]),
        (ready.utc_ns - exited.utc_ns) / 1e6,
    )


def crash_rows(mode: str, rs: list[Restart]) -> list[Row]:
    """The kill-to-ready median with its breakdown in the note."""

    def med(attr: str) -> float | None:
        """Median of one timing over every restart."""
        return median([getattr(r, attr) for r in rs])

    k2r = med("kill_to_ready_ms")
    note = (
        f"{len(rs)} kills; kill->EXITED {med('kill_to_exited_ms'):.1f} ms, EXITED->READY "
        f"{med('exited_to_ready_ms'):.1f} ms (utc {med('utc_exited_to_ready_ms'):.1f}), "
        f"spawn->ready (data.start_ms) {med('start_ms'):.1f} ms; max kill->READY "
        f"{max(r.kill_to_ready_ms for r in rs):.1f} ms"
    )
    return [
        Row(
            f"crash -> restarted and ready ({mode})",
            k2r,
            "ms",
            budget=CRASH_BUDGET,
            group="crash",
            note=note,
            samples={"restarts": [vars(r) for r in rs]},
        )
    ]


async def crash_async(quick: bool) -> list[Row]:
    """Two runtimes (fork server, exec) side by side; kills alternate between them."""
    kills = 5 if quick else 10
    modes = {"fork server": RELAXED, "exec": [*RELAXED, "runtime.spawn=exec"]}
    async with contextlib.AsyncExitStack() as stack:
        runtimes = {
            m: await stack.enter_async_context(running(services=["test"], overrides=o)) for m, o in modes.items()
        }
        watches = {m: await watch(rt) for m, rt in runtimes.items()}
        results: dict[str, list[Restart]] = {m: [] for m in runtimes}
        for _ in range(kills):
            for m, rt in runtimes.items():
                results[m].append(await one_restart(rt, watches[m]))
        spawn = {m: (await rt.status())["kernel"]["spawn"] for m, rt in runtimes.items()}
    rows = [r for m in modes for r in crash_rows(m, results[m])]
    for row, m in zip(rows, modes, strict=True):
        row.samples["kernel_reports_spawn"] = spawn[m]
    rows[1].budget = None  # exec is the comparison; the budget is for the fork server
    return rows


async def one_hang(rt: RuntimeProcess, w: EventWatch) -> dict[str, Any]:
    """SIGSTOP the test service; time the SERVICE_HUNG event, then wait for the restart."""
    t0 = await signal_test(rt, "STOP")
    hung = await w.next("SERVICE_HUNG")
    await w.next("SERVICE_READY")
    return {"stop_to_hung_ms": (hung.mono_ns - t0) / 1e6, "silent_ms": float(hung.payload["data"]["silent_ms"])}


async def hang_async(quick: bool) -> list[Row]:
    """Stop the test service repeatedly under a 0.2 s x 3 heartbeat limit."""
    stops = 3 if quick else 6
    async with running(services=["test"], overrides=[*RELAXED, *HANG_SETTINGS]) as rt:
        w = await watch(rt)
        res = [await one_hang(rt, w) for _ in range(stops)]
    stop_to_hung = [r["stop_to_hung_ms"] for r in res]
    note = (
        f"{stops} SIGSTOPs, heartbeat {HB_PERIOD_S} s x {HB_MISSES}; each stop follows the previous "
        "restart's READY (a fresh heartbeat: the worst phase, so stop->HUNG ~ the limit plus the "
        f"kernel's reaction); kernel's silent_ms median {median([r['silent_ms'] for r in res]):.1f}"
    )
    return [
        Row(
            "hang detection: SIGSTOP -> SERVICE_HUNG (median)",
            median(stop_to_hung),
            "ms",
            budget=HANG_BUDGET,
            group="hang",
            note=note,
            samples={"stops": res},
        ),
        Row("hang detection: SIGSTOP -> SERVICE_HUNG (max)", max(stop_to_hung), "ms", budget=HANG_BUDGET, group="hang"),
    ]


def run_crash(quick: bool = False) -> list[Row]:
    """Measure figure 3 and return its rows."""
    return asyncio.run(crash_async(quick))


def run_hang(quick: bool = False) -> list[Row]:
    """Measure figure 4 and return its rows."""
    return asyncio.run(hang_async(quick))
