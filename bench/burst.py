"""The burst figure: 64 SDK publishers x 2,000 messages at once through the proxy; delivered, lost, counted.

The publishers (one helper process, each an SDK Publisher of its own with the default HWM, in a
running event loop as in a service) join with probes, then publish their 2,000 messages each: all in
one loop iteration, or one per publisher per iteration (each message then leaves alone, as telemetry
published once per iteration does), or with coalescing off (one frame per message, as events and the
kernel's topics go), or from a thread with no event loop (as a script publishes). The subscriber
(this process, ``Subscriber.batches()``, with a receive queue of 1,000 frames) reads nothing until the
publishers are done, then counts what arrives until the flow has been quiet for ``QUIET_S`` and
``MARK_WAIT_S`` have passed since the burst, so that what the publishers send once a topic falls
quiet (the topic's last sequence number) is counted.
Lost = sent - delivered; counted = the subscriber's ``dropped``, read before the publishers close.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

import zmq

from bench import goals, workers
from bench.report import Row

PUBLISHERS = 64
EACH = 2_000
SIZE = 64
QUIET_S = 0.5
MARK_WAIT_S = 4.0
"""From the end of the burst: past both of flightos's marks after a topic falls quiet (0.25 s, then 2 s
later, each with jitter, behind a subscriber still draining the proxy's queue; the first can be dropped
too while that queue is still full). At 2.6 s one loaded run counted 23,296 of 28,128 losses."""
MODES = {
    "batched": "SDK default, 2,000 per publisher per loop iteration",
    "spread": "SDK default, 1 per publisher per loop iteration",
    "frames": "coalesce=False, one frame per message",
    "thread": "SDK default, from a thread with no event loop",
}
TIMEOUT_S = 60.0
STALL = True
"""The subscriber reads nothing while the burst is sent (a consumer busy elsewhere)..."""
SUB_HWM = 1_000
"""...with a small receive queue, so the proxy's 100,000-frame send queue is what holds the burst and the
rest is dropped: the losses the figure is about (with the SDK's 100,000 nothing here would overflow)."""


def coalescing() -> bool:
    """Whether this SDK's Publisher can coalesce (it then takes ``coalesce=``)."""
    from flightos.bus.pubsub import Publisher

    return "coalesce" in inspect.signature(Publisher).parameters


def marks_without_loop() -> bool:
    """Whether this SDK marks topics published outside an event loop (before, only at close)."""
    from flightos.bus import pubsub

    return hasattr(pubsub.Publisher, "_start_marker")


def publishers_main(conn: Connection, xsub: str, n: int, each: int, mode: str) -> None:
    """``n`` SDK publishers: probes until "go", then ``each`` messages apiece, as ``mode`` says (see MODES)."""
    from flightos.bus.pubsub import Publisher

    async def serve() -> None:
        """Join, burst, report, stay alive (so marks go out) until "close"."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        opts: dict[str, Any] = {"coalesce": False} if mode == "frames" and coalescing() else {}
        pubs = [Publisher(ctx, xsub, f"burst{i:02d}", **opts) for i in range(n)]
        conn.send("ready")
        while not conn.poll(0):
            for p in pubs:
                p.publish(workers.WARM_TOPIC, b"")
            await asyncio.sleep(0.005)
        conn.recv()
        payload = b"x" * SIZE
        t0 = time.monotonic_ns()
        if mode == "spread":  # every publisher one message per loop iteration, all of them at once
            for _ in range(each):
                for p in pubs:
                    p.publish(workers.DATA_TOPIC, payload)
                await asyncio.sleep(0)
        elif mode == "thread":  # as a script would: no event loop in the publishing thread

            def script() -> None:
                for p in pubs:
                    for _ in range(each):
                        p.publish(workers.DATA_TOPIC, payload)

            await asyncio.get_running_loop().run_in_executor(None, script)
        else:  # each publisher all its messages in one loop iteration
            for p in pubs:
                publish = p.publish
                for _ in range(each):
                    publish(workers.DATA_TOPIC, payload)
        await asyncio.sleep(0)
        conn.send({"t0_ns": t0, "t1_ns": time.monotonic_ns()})
        while not conn.poll(0):
            await asyncio.sleep(0.01)
        conn.recv()
        for p in pubs:
            p.close()
        conn.send("closed")
        await asyncio.sleep(0.3)  # let the closing frames leave before the context goes
        ctx.term()

    asyncio.run(serve())


async def _consume(
    ctx: zmq.Context[zmq.Socket[bytes]], xpub: str, pub: workers.Worker, n: int, each: int
) -> dict[str, Any]:
    """Join every publisher, count the burst, wait for the flow to stop and the marks to come."""
    from flightos.bus.pubsub import Subscriber

    sub = Subscriber(ctx, xpub, "bench")
    sub.sock.disconnect(xpub)  # a small receive queue: HWMs apply to connections made after they are set
    sub.sock.setsockopt(zmq.RCVHWM, SUB_HWM)
    sub.sock.connect(xpub)
    sub.subscribe("bench.")
    delivered = 0
    try:
        joined: set[str] = set()
        while len(joined) < n:
            joined.update(e.source for e in await asyncio.wait_for(sub.batches(), TIMEOUT_S))
        pub.conn.send("go")
        if STALL:  # blocks this loop on purpose: the subscriber is busy while the burst is sent
            pub.conn.poll(TIMEOUT_S)
        t_last = time.monotonic()
        quiet_since: float | None = None
        while True:
            try:
                batch = await asyncio.wait_for(sub.batches(), 0.05)
            except asyncio.TimeoutError:
                batch = []
            now = time.monotonic()
            got = sum(1 for e in batch if e.topic == workers.DATA_TOPIC)
            delivered += got
            if got:
                t_last, quiet_since = now, None
            elif quiet_since is None:
                quiet_since = now
            if delivered >= n * each or (quiet_since is not None and now - quiet_since >= QUIET_S and pub.conn.poll(0)):
                break
        report: dict[str, Any] = pub.conn.recv()
        until = report["t1_ns"] / 1e9 + MARK_WAIT_S
        while time.monotonic() < until:
            with contextlib.suppress(asyncio.TimeoutError):
                delivered += sum(
                    1 for e in await asyncio.wait_for(sub.batches(), 0.05) if e.topic == workers.DATA_TOPIC
                )
        counted = sub.dropped
        pub.conn.send("close")
        pub.conn.recv()
        until = time.monotonic() + 0.3
        while time.monotonic() < until:
            with contextlib.suppress(asyncio.TimeoutError):
                delivered += sum(
                    1 for e in await asyncio.wait_for(sub.batches(), 0.05) if e.topic == workers.DATA_TOPIC
                )
        return {
            "delivered": delivered,
            "counted": counted,
            "counted_after_close": sub.dropped,
            "seconds": (t_last * 1e9 - report["t0_ns"]) / 1e9 if delivered else None,
            "publish_seconds": (report["t1_ns"] - report["t0_ns"]) / 1e9,
        }
    finally:
        sub.close()


def burst(mode: str) -> dict[str, Any]:
    """One burst through a proxy of its own: what the subscriber saw."""
    with tempfile.TemporaryDirectory(prefix="fos-bench-") as tmp:
        xsub, xpub = f"ipc://{tmp}/pub.sock", f"ipc://{tmp}/sub.sock"
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        proxy = workers.start(workers.proxy_main, xsub, xpub)
        pub = workers.start(publishers_main, xsub, PUBLISHERS, EACH, mode)
        try:
            return asyncio.run(asyncio.wait_for(_consume(ctx, xpub, pub, PUBLISHERS, EACH), TIMEOUT_S))
        finally:
            pub.stop()
            proxy.stop()
            ctx.term()


def run(quick: bool = False) -> list[Row]:
    """The burst in each mode (one, "frames", when the SDK does not coalesce: it sends one frame per message)."""
    n, each, sent = PUBLISHERS, EACH, PUBLISHERS * EACH
    modes = (
        [(MODES[m], m) for m in MODES if m != "thread" or marks_without_loop()]
        if coalescing()
        else [("one frame per message (this SDK does not coalesce)", "batched")]
    )
    rows: list[Row] = []
    judged: list[dict[str, Any]] = []
    for label, mode in modes:
        res = burst(mode)
        lost = sent - res["delivered"]
        note = (
            f"{n} SDK publishers in one process, {SIZE} B ({res['publish_seconds'] * 1000:.0f} ms to publish "
            f"all); the subscriber reads nothing until they are done, receive queue {SUB_HWM:,} frames; "
            f"lost {lost:,}, counted by the subscriber {res['counted']:,} while the publishers lived "
            f"({res['counted_after_close']:,} once they closed)"
        )
        judged.append(
            {
                "mode": label,
                "publishers": n,
                "each": each,
                "sent": sent,
                "delivered": res["delivered"],
                "counted": res["counted"],
                "note": note,
            }
        )
        rows += [
            Row(
                f"burst {n} x {each:,}, {label}: delivered",
                res["delivered"],
                "msgs",
                float(sent),
                res["delivered"] / sent,
                group="burst",
                note=note,
                samples=res,
            ),
            Row(
                f"burst {n} x {each:,}, {label}: lost, not counted",
                float(lost - res["counted"]),
                "msgs",
                group="burst",
                note="messages lost that no subscriber counter shows (goal: 0)",
            ),
        ]
    goals.record("burst", judged)
    return rows
