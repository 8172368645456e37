"""Vouched topics (events, products, the kernel's own) keep their publisher's order whichever copy comes first.

An event reaches a subscriber twice: through the shared proxy, and from the kernel, which vouches for it on
``kev.sock`` after checking who raised it. Under load the kernel's copies lag; an event whose proxy copy came
first is delivered when its twin arrives, and must still come out before a later event that the same drain
delivers straight away (ground's store keeps events FIFO within a priority, so this order reaches the ground).
"""

from __future__ import annotations

import asyncio

import zmq

from flightos.bus import envelope as wire
from flightos.bus.pubsub import KernelChannel, Subscriber


def event_frame(n: int) -> bytes:
    env = wire.make(wire.Kind.EVENT, "ev.test", "test", {"message": f"event {n}"}, seq=n)
    return wire.encode_topic_frame(b"ev.test", env)


async def test_a_late_vouched_event_comes_out_before_a_later_one_delivered_in_the_same_drain() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy, kev = ctx.socket(zmq.XPUB), ctx.socket(zmq.XPUB)
    proxy.bind("inproc://proxy")
    kev.bind("inproc://kev")
    sub = Subscriber(ctx, "inproc://proxy", "test", KernelChannel("inproc://kev", 0))
    try:
        sub.subscribe("ev.")
        for pub in (proxy, kev):  # the subscription has reached both publishers: nothing sent is filtered away
            assert pub.poll(5000) and pub.recv() == b"\x01ev."
        one, two = event_frame(1), event_frame(2)  # the kernel's copy is the same bytes as the proxy's
        assert sub.decode_batch([one]) == []  # event 1's proxy copy came in an earlier drain: held for its twin
        kev.send(one)  # the kernel catches up: its copies of events 1 and 2 in one go
        kev.send(two)
        proxy.send(two)  # and event 2's proxy copy, already vouched for
        got: list[str] = []
        while len(got) < 2:
            got += [e.payload["message"] for e in await asyncio.wait_for(sub.batches(), 5)]
        assert got == ["event 1", "event 2"]
        assert sub.dropped == 0 and sub.forged == 0
    finally:
        sub.close()
        proxy.close(0)
        kev.close(0)
        ctx.term()
