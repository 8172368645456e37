"""Garbage on every bus socket is counted and logged; nobody crashes, nothing else is lost."""

from __future__ import annotations

import msgpack
import zmq

from flightos.bus import envelope as wire
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import Kind
from flightos.testing import RuntimeProcess, active, eventually

GARBAGE = [
    b"",
    b"\x00",
    b"\xff" * 64,
    b"not msgpack at all",
    msgpack.packb([99, 1, "x", "y", 1, 1, 1, "", None]),
    msgpack.packb({"v": 1}),
    msgpack.packb([1, 3, "test"]),
]


async def test_garbage_frames_are_rejected_counted_and_survived(runtime: RuntimeProcess) -> None:
    """Malformed and unknown-version frames on command, control and pub/sub sockets are counted."""
    c = runtime.client
    assert c is not None
    before = await runtime.status()
    pids = {s["name"]: s["pid"] for s in active(before)}
    ep = Endpoints(runtime.runtime_dir)
    ctx = zmq.Context()
    try:
        cmd = ctx.socket(zmq.DEALER)
        ctl = ctx.socket(zmq.DEALER)
        ctl.setsockopt(zmq.IDENTITY, b"s/test/99")  # posing as a stale incarnation of a service
        pub = ctx.socket(zmq.XPUB)  # an XPUB hears the subscriptions: it sends once housekeeping's has come
        for s in (cmd, ctl, pub):
            s.setsockopt(zmq.LINGER, 1000)
        cmd.connect(ep.command)
        ctl.connect(ep.control)
        pub.connect(ep.publish)
        for g in GARBAGE:
            cmd.send(g)
            ctl.send(g)
        cmd.send_multipart([b"two", b"frames"])
        cmd.send(wire.encode(wire.make(Kind.HEARTBEAT, "kernel", "x", None)))
        sub_check = c.subscriber("tm.kernel.services")
        await c.wait_for("tm.kernel.services", timeout=5, sub=sub_check)  # proxy path is live
        wanted = b"\x01tm.kernel.services"
        while True:  # a publisher that connects late is sent every subscription; before that it sends to nobody
            assert pub.poll(10_000), "the proxy never passed housekeeping's subscription on"
            if pub.recv() == wanted:
                break
        for g in GARBAGE:
            pub.send(b"tm.kernel.services\x00" + g)  # housekeeping subscribes to this topic
            pub.send(b"tm.kernel.services" + g)
        # a well-formed command still works afterwards, from the same peer that sent garbage
        env = wire.make(
            Kind.COMMAND, "test", "garbage-peer", {"name": "ping", "args": {}, "timeout_ms": 3000}, corr=wire.new_id()
        )
        cmd.send(wire.encode(env))
        assert cmd.poll(5000), "no answer after garbage"
        answer = wire.decode(cmd.recv())
        assert answer.payload["ok"] is True
        await eventually(  # the garbage is on its way through the proxy: wait for it before the sockets close
            lambda: c.call("housekeeping", "stats"),
            until=lambda st: st["rejected"] >= 5,
            timeout=10,
            what="housekeeping to count the garbage frames",
        )
    finally:
        ctx.destroy(linger=0)
    after = await runtime.status()
    rejected = after["bus"]["rejected"]
    assert rejected["commands"].get("malformed", 0) >= 5
    assert rejected["commands"].get("unknown_version", 0) == 1
    assert rejected["control"].get("malformed", 0) >= 5
    stats = await c.call("housekeeping", "stats")
    assert stats["rejected"] >= 5
    assert {s["name"]: s["pid"] for s in active(after)} == pids
    assert all(s["state"] == "READY" for s in active(after))
