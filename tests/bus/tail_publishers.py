"""The publishing side of test_tail_marks, run as a process of its own: ``python -m tests.bus.tail_publishers
XSUB KEV``; told what to do on stdin ("stop", "go", "close"), it answers each with its last numbers on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
import threading

import zmq

from flightos.bus.envelope import Kind
from flightos.bus.pubsub import Publisher

EACH = 3_000
"""Messages per topic in the burst."""


def main(xsub: str, kev: str) -> None:
    """The kernel's publisher (mirrored on ``kev``), a service's events (which the kernel vouches for by
    mirroring them), and a plain Publisher used from a thread with no event loop. Probes until "stop",
    bursts at "go" and stays alive (so the marks go out) until "close"."""

    async def serve() -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        kernel = Publisher(ctx, xsub, "kernel", mirror=kev, sndhwm=64)
        svc = Publisher(ctx, xsub, "svc", sndhwm=64)
        svc.vouch = kernel.mirror_frame
        script = Publisher(ctx, xsub, "script", sndhwm=64)
        stop, stopped, go = threading.Event(), threading.Event(), threading.Event()

        def script_thread() -> None:  # a script: no event loop in this thread
            while not stop.is_set():
                script.publish("tm.script", None)
                stop.wait(0.02)
            stopped.set()
            go.wait()
            for i in range(EACH):
                script.publish("tm.script", i)

        def answer() -> None:
            print(json.dumps({p.source: n for p in (kernel, svc, script) for n in p.last_seq().values()}), flush=True)

        thread = threading.Thread(target=script_thread, daemon=True)
        thread.start()
        loop = asyncio.get_running_loop()
        line = loop.run_in_executor(None, sys.stdin.readline)
        while not line.done():  # probes until the subscriber has every topic
            kernel.publish("tm.kernel.burst", None)
            svc.publish("ev.svc", None, Kind.EVENT)
            await asyncio.wait({line}, timeout=0.02)
        assert line.result().strip() == "stop"
        stop.set()
        await loop.run_in_executor(None, stopped.wait)
        answer()
        assert (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go"
        go.set()
        for i in range(EACH):
            kernel.publish("tm.kernel.burst", i)
            svc.publish("ev.svc", i, Kind.EVENT)
        await loop.run_in_executor(None, thread.join)
        answer()
        await loop.run_in_executor(None, sys.stdin.readline)  # the marks go out meanwhile: the loop's timer, the thread
        for p in (kernel, svc, script):
            p.close()
        ctx.term()

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
