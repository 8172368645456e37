"""Figure 2: command round trip through the kernel router vs raw pyzmq DEALER/ROUTER and MQTT request/reply.

The SDK path is ``Client.call("test", "ping")`` against a real runtime (client -> kernel ROUTER
-> test service -> kernel -> client). The baselines send a frame of the same size as the command
envelope to a ROUTER in another process that sends it straight back, over ipc: a blocking pyzmq
DEALER (the budget's baseline), and an asyncio DEALER to an asyncio ROUTER, both driven by FD
callbacks that drain with NOBLOCK (the baseline of issue 15's goal). ``kernel.ping`` (answered by the kernel itself)
separates the service hop. The peer is MQTT v5 request/reply (response topic and correlation data)
through a mosquitto of the bench's own, when mosquitto and paho-mqtt are there. All run
sequentially, one call at a time, in blocks whose order rotates.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from bench import goals, mqtt, workers
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
    env = wire.make(
        wire.Kind.COMMAND, "test", "test", command_payload("ping", {}, DEFAULT_TIMEOUT_S), corr=wire.new_id()
    )
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


class AsyncDealer:
    """A DEALER driven by asyncio the lean way (FD callback, drain with NOBLOCK, one future per call)."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        """Watch ``sock``'s FD on the running loop."""
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[bytes] | None = None
        self.loop.add_reader(int(sock.getsockopt(zmq.FD)), self._on_readable)

    def _on_readable(self) -> None:
        """Edge-triggered FD: drain until EVENTS shows no POLLIN; the reply resolves the pending call."""
        while int(self.sock.getsockopt(zmq.EVENTS)) & workers.POLLIN:
            msg = self.sock.recv(zmq.NOBLOCK)
            if self.fut is not None and not self.fut.done():
                self.fut.set_result(msg)

    async def block(self, frame: bytes, n: int) -> list[float]:
        """``n`` sequential ping-pongs; each round trip in microseconds."""
        out: list[float] = []
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            self.fut = self.loop.create_future()
            self.sock.send(frame)
            self._on_readable()  # a send can consume the FD's edge: look once before waiting
            await self.fut
            out.append((clock() - t0) / 1e3)
        return out

    def close(self) -> None:
        """Stop watching and close the socket."""
        self.loop.remove_reader(int(self.sock.getsockopt(zmq.FD)))
        self.sock.close(linger=0)


async def measure(
    client: Client,
    sock: zmq.Socket[bytes],
    calls: int,
    asock: AsyncDealer | None = None,
    requester: mqtt.Requester | None = None,
    routed: Client | None = None,
) -> dict[str, list[float]]:
    """Warm every path up, then run blocks in a rotating order until each has ``calls`` samples."""
    frame = b"\x93" * command_frame_size()

    async def block(path: str, n: int) -> list[float]:
        """One block of ``n`` round trips on one path."""
        if path == "raw":
            return raw_block(sock, frame, n)
        if path == "raw asyncio":
            assert asock is not None
            return await asock.block(frame, n)
        if path == "mqtt":
            assert requester is not None
            return requester.block(frame, n)
        if path == "test routed":
            assert routed is not None
            return await sdk_block(routed, "test", n)
        return await sdk_block(client, path, n)

    paths = (
        ["test", "raw", "kernel"]
        + (["raw asyncio"] if asock is not None else [])
        + (["mqtt"] if requester is not None else [])
        + (["test routed"] if routed is not None else [])
    )
    out: dict[str, list[float]] = {p: [] for p in paths}
    for p in paths:
        await block(p, BLOCK)
    k = len(paths)
    for i in range(max(1, calls // BLOCK)):
        for p in paths[i % k :] + paths[: i % k]:
            out[p] += await block(p, BLOCK)
    return out


def rows(res: dict[str, list[float]], size: int) -> list[Row]:
    """p50 and p99 of the service and kernel paths, as ratios to the raw ping-pong; the asyncio and MQTT peers."""
    sdk, raw, kern = res["test"], res["raw"], res["kernel"]
    p50s, p50r, p50k = median(sdk), median(raw), median(kern)
    p99s, p99r = percentile(sdk, 99), percentile(raw, 99)
    samples: dict[str, Any] = {
        "n": len(sdk),
        "frame_bytes": size,
        "test_ping_us": _summary(sdk),
        "raw_us": _summary(raw),
        "kernel_ping_us": _summary(kern),
    }
    goals.record(("rtt", "test"), _summary(sdk))
    path = "direct to the service where it can" if "test routed" in res else "client -> kernel -> service"
    out = [
        Row(
            "command RTT p50: Client.call test.ping",
            p50s,
            "µs",
            p50r,
            ratio(p50s, p50r),
            BUDGET,
            group="rtt",
            samples=samples,
            note=f"the SDK's default path ({path}); baseline: raw blocking pyzmq DEALER->ROUTER echo over ipc, "
            f"{size}-byte frame; {len(sdk)} calls each",
        ),
        Row("command RTT p99: Client.call test.ping", p99s, "µs", p99r, ratio(p99s, p99r), group="rtt"),
        Row(
            "command RTT p50: Client.call kernel.ping (no service hop)",
            p50k,
            "µs",
            p50r,
            ratio(p50k, p50r),
            group="rtt",
            note="answered by the kernel itself: client + kernel cost without the service hop",
        ),
    ]
    for key, name, note in (
        (
            "test routed",
            "Client.call test.ping, every hop through the kernel (direct=False)",
            "the kernel-routed path beside the SDK's default",
        ),
        (
            "raw asyncio",
            "raw asyncio DEALER<->ROUTER",
            "issue 15's baseline: pyzmq sockets on asyncio loops at both ends, FD callback and NOBLOCK "
            "drain (the SDK's own style; zmq.asyncio's futures cost ~2x more here)",
        ),
        (
            "mqtt",
            "MQTT v5 request/reply via mosquitto (paho-mqtt)",
            "QoS 0, response topic + correlation data, loopback TCP, threaded paho client",
        ),
    ):
        xs = res.get(key)
        if not xs:
            continue
        sm = _summary(xs)
        samples[key.replace(" ", "_") + "_us"] = sm
        goals.record(("rtt", key), sm)
        out += [
            Row(
                f"command RTT p50: {name}",
                sm["p50"],
                "µs",
                p50s,
                ratio(sm["p50"], p50s),
                group="rtt",
                note=f"{note}; baseline here is Client.call test.ping, same run (ratio < 1: the peer is faster)",
            ),
            Row(f"command RTT p99: {name}", sm["p99"], "µs", p99s, ratio(sm["p99"], p99s), group="rtt"),
        ]
    return out


def _summary(xs: list[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of round trips."""
    return {"p50": median(xs), "p90": percentile(xs, 90), "p99": percentile(xs, 99), "max": max(xs)}


def _routed_client(runtime_dir: Path) -> Client | None:
    """A second client whose commands all go through the kernel, when the SDK has a direct path to choose."""
    if "direct" not in inspect.signature(Client).parameters:
        return None
    return Client(runtime_dir, name="bench-routed", direct=False)


@contextlib.contextmanager
def _mqtt_peer() -> Iterator[mqtt.Requester | None]:
    """The MQTT requester (broker and responder included, torn down on exit), or None with the reason recorded."""
    with contextlib.ExitStack() as stack:
        req: mqtt.Requester | None = None
        try:
            req = stack.enter_context(mqtt.request_reply())
        except Exception as exc:  # a missing or broken peer never costs the figure
            why = str(exc) if isinstance(exc, mqtt.Unavailable) else f"{type(exc).__name__}: {exc}"
            goals.record("mqtt_rtt_skipped", f"MQTT not measured: {why}")
            print(f"[bench] rtt: MQTT request/reply skipped: {why}", flush=True)
        yield req


async def run_async(quick: bool) -> list[Row]:
    """Start a runtime with only the test service, the echo servers and the MQTT peer; measure every path."""
    calls = 600 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="fos-bench-") as tmp, _mqtt_peer() as requester:
        ep, aep = f"ipc://{tmp}/echo.sock", f"ipc://{tmp}/aecho.sock"
        echo = workers.start(workers.echo_main, ep)
        aecho = workers.start(workers.aecho_main, aep)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        sock = ctx.socket(zmq.DEALER)
        sock.connect(ep)
        adealer = ctx.socket(zmq.DEALER)
        adealer.connect(aep)
        asock = AsyncDealer(adealer)
        try:
            async with running(services=["test"]) as rt:
                assert rt.client is not None
                routed = _routed_client(rt.runtime_dir)
                try:
                    res = await measure(rt.client, sock, calls, asock, requester, routed)
                finally:
                    if routed is not None:
                        routed.close()
        finally:
            sock.close(linger=0)
            asock.close()
            ctx.term()
            echo.stop()
            aecho.stop()
    return rows(res, command_frame_size())


def run(quick: bool = False) -> list[Row]:
    """Measure figure 2 and return its rows."""
    return asyncio.run(run_async(quick))
