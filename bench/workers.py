"""Helper processes of the bus figures: a libzmq proxy, a publisher, a raw ROUTER echo server.

Each runs in a fresh interpreter (multiprocessing ``spawn``: no inherited ZeroMQ state) and
takes orders over a pipe, so one process serves every repetition of a figure.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import zmq

WARM_TOPIC = "bench.w"
DATA_TOPIC = "bench.d"
END_TOPIC = "bench.end"
SEP = b"\x00"
JOIN_PERIOD_S = 0.001
"""How often the publisher repeats its join probe until the subscriber says go."""
END_PERIOD_S = 0.01
"""How often the publisher repeats the end marker until the trial is closed."""
POLLIN = int(zmq.POLLIN)
SDK_CHUNK = 1000
"""Messages the SDK publisher sends per loop iteration in a flood."""


@dataclass
class Worker:
    """A helper process and the parent's end of its pipe."""

    proc: mp.process.BaseProcess
    conn: Connection

    def ask(self, *msg: Any) -> Any:
        """Send an order and return the reply."""
        self.conn.send(msg)
        return self.conn.recv()

    def stop(self) -> None:
        """Ask the worker to quit; kill it (by its own pid) if it does not."""
        try:
            self.conn.send(("quit",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def start(target: Callable[..., None], *args: Any) -> Worker:
    """Start ``target(conn, *args)`` in a fresh interpreter and wait for its ``ready``."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(30):
        proc.kill()
        raise RuntimeError(f"helper {target.__name__} did not start within 30 s")
    parent.recv()
    return Worker(proc, parent)


# ---- the libzmq proxy ------------------------------------------------------------------------
def proxy_main(conn: Connection, xsub_ep: str, xpub_ep: str) -> None:
    """Run flightos's own Proxy (libzmq XSUB/XPUB on a thread) until told to quit."""
    from flightos.bus.proxy import Proxy

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    proxy = Proxy(ctx, xsub_ep, xpub_ep)
    proxy.start()
    conn.send("ready")
    conn.recv()
    # Not proxy.stop(): with libzmq 4.3.5 it can sit out its 5 s join (the proxy blocks replying to
    # TERMINATE on a PAIR whose peer already closed). This helper has nothing to flush: just exit.
    os._exit(0)


# ---- the publisher ---------------------------------------------------------------------------
class _RawPublisher:
    """A plain PUB socket sending single frames ``topic NUL payload``, prebuilt where possible."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> None:
        """Connect a PUB socket with the given send HWM."""
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.connect(endpoint)

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one frame."""
        self.sock.send(topic.encode() + SEP + payload)

    def flood(self, payload: bytes, count: int) -> None:
        """Send ``count`` identical data frames: one prebuilt frame, the fastest pyzmq can go."""
        frame, send = DATA_TOPIC.encode() + SEP + payload, self.sock.send
        for _ in range(count):
            send(frame)

    def close(self) -> None:
        """Close at once (the subscriber has everything by now)."""
        self.sock.close(linger=0)


class _SdkPublisher:
    """flightos's Publisher (envelope, per-topic sequence numbers), with the given send HWM."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> None:
        """Create flightos's Publisher after setting its module-level send HWM."""
        from flightos.bus import pubsub

        pubsub.PUB_HWM = hwm  # read by Publisher.__init__; only this helper process is affected
        self.pub = pubsub.Publisher(ctx, endpoint, "bench")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one message."""
        self.pub.publish(topic, payload)

    async def flood(self, payload: bytes, count: int) -> None:
        """Publish ``count`` data messages, each a fresh envelope, yielding to the loop every ``SDK_CHUNK``
        as a service does (a coalescing publisher flushes at the end of each loop iteration)."""
        publish = self.pub.publish
        for done in range(0, count, SDK_CHUNK):
            for _ in range(min(SDK_CHUNK, count - done)):
                publish(DATA_TOPIC, payload)
            await asyncio.sleep(0)

    def close(self) -> None:
        """Close at once (the subscriber has everything by now)."""
        self.pub.sock.close(linger=0)


async def _wait_order(conn: Connection, period_s: float) -> bool:
    """Whether the parent sent something within ``period_s``, letting the loop run (and publishers flush)."""
    await asyncio.sleep(period_s)
    return conn.poll(0)


async def _join(pub: _RawPublisher | _SdkPublisher, conn: Connection) -> int:
    """Repeat a probe until the subscriber has seen one and says go; return the probes sent."""
    n = 0
    while not conn.poll(0):
        pub.publish(WARM_TOPIC, b"")
        n += 1
        await _wait_order(conn, JOIN_PERIOD_S)
    conn.recv()
    return n


async def _publish_trial(
    ctx: zmq.Context[zmq.Socket[bytes]], conn: Connection, kind: str, endpoint: str, size: int, count: int, hwm: int
) -> None:
    """One trial: connect, join, flood, end marker, report; close only once the subscriber is done."""
    pub = _SdkPublisher(ctx, endpoint, hwm) if kind == "sdk" else _RawPublisher(ctx, endpoint, hwm)
    try:
        probes = await _join(pub, conn)
        t0 = time.monotonic_ns()
        if isinstance(pub, _SdkPublisher):
            await pub.flood(b"x" * size, count)
        else:
            pub.flood(b"x" * size, count)
        pub.publish(END_TOPIC, b"")
        await asyncio.sleep(0)
        t1 = time.monotonic_ns()
        conn.send({"t0_ns": t0, "t1_ns": t1, "sent": count, "probes": probes})
        while not await _wait_order(conn, END_PERIOD_S):  # until "close": repeat the end marker in case one dropped
            pub.publish(END_TOPIC, b"")
        conn.recv()
    finally:
        pub.close()
    conn.send("closed")


def publisher_main(conn: Connection) -> None:
    """Serve publish trials until told to quit."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg[0] == "quit":
            break
        asyncio.run(_publish_trial(ctx, conn, *msg[1:]))
    ctx.term()


# ---- the raw ROUTER echo server --------------------------------------------------------------
def echo_main(conn: Connection, endpoint: str) -> None:
    """A ROUTER that sends every message straight back (blocking recv), until told to quit."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.RCVTIMEO, 100)
    sock.bind(endpoint)
    conn.send("ready")
    recv, send = sock.recv_multipart, sock.send_multipart
    while not conn.poll(0):
        try:
            while True:
                send(recv())
        except zmq.Again:
            pass
    sock.close(linger=0)
    ctx.term()


# ---- the raw asyncio ROUTER echo server ------------------------------------------------------
def aecho_main(conn: Connection, endpoint: str) -> None:
    """An asyncio ROUTER that sends every message straight back from its FD callback, until told to quit.

    The leanest asyncio server pyzmq allows (the style of flightos's own drain): no futures per message.
    """

    async def serve() -> None:
        """Echo until the parent's pipe says quit."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        sock = ctx.socket(zmq.ROUTER)
        sock.bind(endpoint)
        recv, send, events = sock.recv_multipart, sock.send_multipart, sock.getsockopt

        def on_readable() -> None:
            """Drain: edge-triggered FD, so read until EVENTS has no POLLIN (sends included)."""
            while int(events(zmq.EVENTS)) & POLLIN:
                send(recv(zmq.NOBLOCK))

        loop = asyncio.get_running_loop()
        loop.add_reader(int(sock.getsockopt(zmq.FD)), on_readable)
        quit_ = asyncio.Event()
        loop.add_reader(conn.fileno(), quit_.set)
        conn.send("ready")
        on_readable()
        await quit_.wait()
        loop.remove_reader(int(sock.getsockopt(zmq.FD)))
        sock.close(linger=0)
        ctx.term()

    asyncio.run(serve())
