"""Figure 1: pub/sub throughput — the SDK through the kernel proxy vs raw pyzmq, direct and proxied.

Three paths, interleaved in every repetition, at each payload size:
  raw direct   pyzmq PUB -> SUB (one prebuilt frame, blocking recv): the baseline;
  raw proxy    the same sockets through flightos's libzmq XSUB/XPUB proxy: the proxy's cost;
  sdk proxy    Publisher.publish -> proxy -> Subscriber.batches() (decoded envelopes): the SDK's cost.
The publisher and the proxy are separate processes; the subscriber is this one. A join probe
(repeated until seen) replaces sleeps; an end marker (repeated until the trial closes, so a lost
one cannot stall it) ends each trial. Every publisher has an unlimited send HWM, the subscribers
keep the SDK's 100 000, and every trial stays well under the proxy's 100 000, so nothing should drop;
the delivered count is what is reported, and any shortfall is reported as drops.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from bench import goals, workers
from bench.report import Budget, Row, fmt_ratio, num
from bench.stats import median, ratio
from flightos.bus.pubsub import Subscriber

SIZES = (64, 1024, 65536)
PATHS = ("raw direct", "raw proxy", "sdk proxy")
SUB_HWM = 100_000
"""The receive HWM of flightos's Subscriber, used for the raw subscriber too."""
PUB_HWM = 0
"""Unlimited send HWM on every publisher, so a flood queues instead of dropping."""
TRIAL_TIMEOUT_S = 20.0
BUDGET = Budget("ratio", ">=", 0.5, goal=0.8)

FULL_COUNTS = {64: 80_000, 1024: 80_000, 65536: 8_000}
QUICK_COUNTS = {64: 60_000, 1024: 40_000, 65536: 2_500}
"""Well under the proxy's XPUB send HWM (100 000) with the probes and end markers, so it cannot fill:
libzmq's writer learns of reads only every ~99 000 messages, so a 100 000-message trial can drop."""
WARMUP_COUNTS = {64: 20_000, 1024: 10_000, 65536: 500}
DATA_PREFIX = workers.DATA_TOPIC.encode() + workers.SEP
END_PREFIX = workers.END_TOPIC.encode() + workers.SEP


@dataclass
class Trial:
    """One flood: how many arrived and how long from the first send to the end marker."""

    path: str
    size: int
    sent: int
    delivered: int
    seconds: float
    send_seconds: float

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.delivered / self.seconds

    @property
    def send_rate(self) -> float:
        """Messages per second the publisher alone managed (its loop, before any backpressure)."""
        return self.sent / self.send_seconds


@dataclass
class Bench:
    """The helper processes and endpoints shared by every trial."""

    ctx: zmq.Context[zmq.Socket[bytes]]
    tmp: Path
    proxy: workers.Worker
    pub: workers.Worker
    n: int = 0

    @property
    def xsub(self) -> str:
        """Where publishers connect to the proxy."""
        return f"ipc://{self.tmp}/pub.sock"

    @property
    def xpub(self) -> str:
        """Where subscribers connect to the proxy."""
        return f"ipc://{self.tmp}/sub.sock"

    def direct(self) -> str:
        """A fresh endpoint for a direct trial (the subscriber binds it)."""
        self.n += 1
        return f"ipc://{self.tmp}/direct-{self.n}.sock"


def _raw_consume(sock: zmq.Socket[bytes], pub: workers.Worker) -> tuple[int, int]:
    """Blocking recv: wait for the join probe, say go, count data frames until the end marker."""
    sock.setsockopt(zmq.RCVTIMEO, int(TRIAL_TIMEOUT_S * 1000))
    sock.recv()
    pub.conn.send("go")
    n, recv = 0, sock.recv
    while True:
        frame = recv()
        if frame.startswith(DATA_PREFIX):
            n += 1
        elif frame.startswith(END_PREFIX):
            return n, time.monotonic_ns()


async def _sdk_consume(sub: Subscriber, pub: workers.Worker) -> tuple[int, int]:
    """Subscriber.batches(): wait for the probe, say go, count data envelopes until the end marker."""
    await sub.batches()
    pub.conn.send("go")
    n = 0
    while True:
        for env in await sub.batches():
            if env.topic == workers.DATA_TOPIC:
                n += 1
            elif env.topic == workers.END_TOPIC:
                return n, time.monotonic_ns()


def _raw_trial(b: Bench, size: int, count: int, direct: bool) -> tuple[int, int]:
    """Run the subscriber side of a raw trial."""
    sock = b.ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, SUB_HWM)
    sock.setsockopt(zmq.SUBSCRIBE, b"bench.")
    try:
        if direct:
            ep = b.direct()
            sock.bind(ep)
        else:
            ep = b.xsub
            sock.connect(b.xpub)
        b.pub.conn.send(("trial", "raw", ep, size, count, PUB_HWM))
        return _raw_consume(sock, b.pub)
    finally:
        sock.close(linger=0)


def _sdk_trial(b: Bench, size: int, count: int) -> tuple[int, int]:
    """Run the subscriber side of an SDK trial on a fresh event loop."""

    async def go() -> tuple[int, int]:
        """Subscribe, start the publisher, consume until the end marker."""
        sub = Subscriber(b.ctx, b.xpub, "bench")
        sub.subscribe("bench.")
        try:
            b.pub.conn.send(("trial", "sdk", b.xsub, size, count, PUB_HWM))
            return await asyncio.wait_for(_sdk_consume(sub, b.pub), TRIAL_TIMEOUT_S)
        finally:
            sub.close()

    return asyncio.run(go())


def run_trial(b: Bench, path: str, size: int, count: int) -> Trial:
    """One flood on one path; the publisher closes only after the end marker arrived."""
    if path == "sdk proxy":
        delivered, t_end = _sdk_trial(b, size, count)
    else:
        delivered, t_end = _raw_trial(b, size, count, direct=path == "raw direct")
    report: dict[str, Any] = b.pub.conn.recv()
    b.pub.ask("close")
    return Trial(
        path, size, count, delivered, (t_end - report["t0_ns"]) / 1e9, (report["t1_ns"] - report["t0_ns"]) / 1e9
    )


def sweep(b: Bench, reps: int, counts: dict[int, int]) -> list[Trial]:
    """Every path at every size, ``reps`` times, rotating the path order each repetition."""
    for size in SIZES:  # warm-up, discarded: first connections, page faults, CPU frequency
        for path in PATHS:
            run_trial(b, path, size, WARMUP_COUNTS[size])
    out: list[Trial] = []
    for rep in range(reps):
        for size in SIZES:
            order = PATHS[rep % 3 :] + PATHS[: rep % 3]
            out.extend(run_trial(b, path, size, counts[size]) for path in order)
    return out


def label(size: int) -> str:
    """``64 B``, ``1 KiB``, ``64 KiB``."""
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


@dataclass
class PathStats:
    """The trials of one path at one size, summarised."""

    trials: list[Trial]
    size: int

    @property
    def rate(self) -> float | None:
        """Median delivered messages per second."""
        return median([t.rate for t in self.trials])

    @property
    def dropped(self) -> int:
        """Messages sent but never delivered, over every trial."""
        return sum(t.sent - t.delivered for t in self.trials)

    def samples(self) -> dict[str, Any]:
        """Every trial's rates, for the JSON record."""
        return {
            "msg_per_s": [round(t.rate) for t in self.trials],
            "publisher_msg_per_s": [round(t.send_rate) for t in self.trials],
            "sent": sum(t.sent for t in self.trials),
            "dropped": self.dropped,
        }

    def note(self, *extra: str) -> str:
        """Publisher-alone rate, payload bandwidth and drops, after ``extra``."""
        parts = [*extra, f"publisher alone {num(median([t.send_rate for t in self.trials]))} msg/s"]
        if self.size >= 1024:
            parts.append(f"{(self.rate or 0) * self.size / 1e6:.0f} MB/s of payload")
        if self.dropped:
            parts.append(f"{self.dropped} of {sum(t.sent for t in self.trials)} DROPPED")
        return "; ".join(parts)


def rows_for(trials: list[Trial], size: int) -> list[Row]:
    """The rows of one payload size: the baseline, the proxy's cost, the SDK against both."""
    st = {p: PathStats([t for t in trials if t.size == size and t.path == p], size) for p in PATHS}
    raw, prox, sdk = st["raw direct"], st["raw proxy"], st["sdk proxy"]
    lab, g = label(size), "pubsub"
    for path in PATHS:
        goals.record(("pubsub", size, path), st[path].rate)
    own = f"vs raw via proxy {fmt_ratio(ratio(sdk.rate, prox.rate))} (the SDK's own cost)"
    return [
        Row(f"pub/sub {lab}: raw pyzmq direct", raw.rate, "msg/s", group=g, note=raw.note(), samples=raw.samples()),
        Row(
            f"pub/sub {lab}: raw pyzmq via proxy",
            prox.rate,
            "msg/s",
            raw.rate,
            ratio(prox.rate, raw.rate),
            group=g,
            note=prox.note("the proxy's cost"),
            samples=prox.samples(),
        ),
        Row(
            f"pub/sub {lab}: SDK via proxy",
            sdk.rate,
            "msg/s",
            raw.rate,
            ratio(sdk.rate, raw.rate),
            BUDGET,
            group=g,
            note=sdk.note(own),
            samples=sdk.samples(),
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    """Measure figure 1 and return its rows."""
    reps, counts = (3, QUICK_COUNTS) if quick else (7, FULL_COUNTS)
    with tempfile.TemporaryDirectory(prefix="fos-bench-") as tmp:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        proxy = workers.start(workers.proxy_main, f"ipc://{tmp}/pub.sock", f"ipc://{tmp}/sub.sock")
        pub = workers.start(workers.publisher_main)
        try:
            trials = sweep(Bench(ctx, Path(tmp), proxy, pub), reps, counts)
        finally:
            pub.stop()
            proxy.stop()
            ctx.term()
    return [row for size in SIZES for row in rows_for(trials, size)]
