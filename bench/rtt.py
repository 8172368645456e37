"""Figure 2: command round trip through the kernel router vs a raw pyzmq DEALER/ROUTER ping-pong.

The SDK path is ``Client.call("test", "ping")`` against a real runtime (client -> kernel ROUTER
-> test service -> kernel -> client). The baseline is a blocking pyzmq DEALER sending a frame of
the same size as the command envelope to a ROUTER in another process that sends it straight
back, over ipc. ``kernel.ping`` (answered by the kernel itself) separates the service hop. All
run sequentially, one call at a time, in blocks whose order rotates.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import zmq

from bench import workers
from bench.report import Budget, Row
from bench.runtime import running
from bench.stats import median, percentile, ratio
from flightos.bus import envelope as wire
from flightos.bus.commands import DEFAULT_TIMEOUT_S, command_payload
from flightos.client import Client

BUDGET = Budget("ratio", "<=", 3.0, goal=2.0)
BLOCK = 200
"""Calls per block; blocks of the two paths alternate."""


def command_frame_size() -> int:
    """Bytes of the COMMAND envelope ``Client.call("test", "ping")`` sends."""
    env = wire.make(wire.Kind.COMMAND, "test", "test", command_payload("ping", {}, DEFAULT_TIMEOUT_S),
                    corr=wire.new_id())
    return len(wire.encode(env))


def raw_block(sock: zmq.Socket[bytes], frame: bytes, n: int) -> list[float]:
    """``n`` sequential ping-pongs; each round trip in microseconds."""
    out: list[float] = []
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        send(frame)
        recv()
        out.append((clock() - t0) / 1e3)
    return out


async def sdk_block(client: Client, service: str, n: int) -> list[float]:
    """``n`` sequential ``<service>.ping`` calls; each round trip in microseconds."""
    out: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await client.call(service, "ping")
        out.append((clock() - t0) / 1e3)
    return out


async def measure(client: Client, sock: zmq.Socket[bytes], calls: int) -> dict[str, list[float]]:
    """Warm every path up, then run blocks in a rotating order until each has ``calls`` samples."""
    frame = b"\x93" * command_frame_size()

    async def block(path: str, n: int) -> list[float]:
        """One block of ``n`` round trips on one path."""
        return raw_block(sock, frame, n) if path == "raw" else await sdk_block(client, path, n)

    paths = ["test", "raw", "kernel"]
    out: dict[str, list[float]] = {p: [] for p in paths}
    for p in paths:
        await block(p, BLOCK)
    for i in range(max(1, calls // BLOCK)):
        for p in paths[i % 3:] + paths[:i % 3]:
            out[p] += await block(p, BLOCK)
    return out


def rows(res: dict[str, list[float]], size: int) -> list[Row]:
    """p50 and p99 of the service and kernel paths, as ratios to the raw ping-pong."""
    sdk, raw, kern = res["test"], res["raw"], res["kernel"]
    p50s, p50r, p50k = median(sdk), median(raw), median(kern)
    p99s, p99r = percentile(sdk, 99), percentile(raw, 99)
    samples = {"n": len(sdk), "frame_bytes": size, "test_ping_us": _summary(sdk), "raw_us": _summary(raw),
               "kernel_ping_us": _summary(kern)}
    return [
        Row("command RTT p50: Client.call test.ping via kernel", p50s, "µs", p50r, ratio(p50s, p50r), BUDGET,
            group="rtt", samples=samples,
            note=f"baseline: raw pyzmq DEALER->ROUTER echo over ipc, {size}-byte frame; {len(sdk)} calls each"),
        Row("command RTT p99: Client.call test.ping via kernel", p99s, "µs", p99r, ratio(p99s, p99r),
            group="rtt"),
        Row("command RTT p50: Client.call kernel.ping (no service hop)", p50k, "µs", p50r, ratio(p50k, p50r),
            group="rtt", note="answered by the kernel itself: client + kernel cost without the service hop"),
    ]


def _summary(xs: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of round trips."""
    return {"p50": median(xs), "p90": percentile(xs, 90), "p99": percentile(xs, 99), "max": max(xs)}


async def run_async(quick: bool) -> list[Row]:
    """Start a runtime with only the test service and an echo server; measure both paths."""
    calls = 600 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="fos-bench-") as tmp:
        ep = f"ipc://{tmp}/echo.sock"
        echo = workers.start(workers.echo_main, ep)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        sock = ctx.socket(zmq.DEALER)
        sock.connect(ep)
        try:
            async with running(services=["test"]) as rt:
                assert rt.client is not None
                res = await measure(rt.client, sock, calls)
        finally:
            sock.close(linger=0)
            ctx.term()
            echo.stop()
    return rows(res, command_frame_size())


def run(quick: bool = False) -> list[Row]:
    """Measure figure 2 and return its rows."""
    return asyncio.run(run_async(quick))
