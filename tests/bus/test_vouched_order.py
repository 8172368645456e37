"""Vouched topics (events, products, the kernel's own) keep their publisher's order whichever copy comes first.

An event reaches a subscriber twice: through the shared proxy, and from the kernel, which vouches for it on
``kev.sock`` after checking who raised it. Under load the kernel's copies lag; an event whose proxy copy came
first is delivered when its twin arrives, and must still come out before a later event that the same drain
delivers straight away (ground's store keeps events FIFO within a priority, so this order reaches the ground).
"""

from __future__ import annotations

import asyncio
import time

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


def kernel_frame(n: int, kind: wire.Kind = wire.Kind.TELEMETRY, payload: object = None) -> bytes:
    env = wire.make(kind, "tm.kernel.x", "kernel", payload, seq=n)
    return wire.encode_topic_frame(b"tm.kernel.x", env)


def test_a_copy_whose_kernel_twin_was_lost_is_unverified_not_forged() -> None:
    """The kernel's endpoint overflowed and skipped #2 (and the tail #4, told by a mark): their proxy copies are
    dropped as unverified, never delivered and not reported as forgeries; a frame that claims #3, which the
    kernel did send with other bytes, is a forgery."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nobody", "test", KernelChannel("inproc://nobody-kev", 0))
    try:
        one, two, three, four = (kernel_frame(n) for n in (1, 2, 3, 4))
        forged_three = kernel_frame(3, payload="not what the kernel said")
        assert sub.decode_batch([two, forged_three, four]) == []  # proxy copies, held for their twins
        delivered = sub.take_kernel_frames([zmq.Frame(f) for f in (one, three)])
        delivered += sub.take_kernel_frames([zmq.Frame(kernel_frame(4, wire.Kind.MARK))])  # "sent up to #4"
        delivered += sub.decode_batch([one, three])
        assert [e.seq for e in delivered] == [1, 3]
        assert sub._expire(time.monotonic() + 1) == []
        assert (sub.unverified, sub.forged) == (2, 1)
        assert sub.rejects.counts == {"twin_lost": 2, "not_from_kernel": 1}
    finally:
        sub.close()
        ctx.term()


async def test_a_caller_that_gives_up_as_a_frame_arrives_is_not_left_waiting() -> None:
    """``wait_for(sub.batches(), t)`` while a kernel frame is held for its twin, and a frame wakes the subscriber
    in the very loop iteration the caller's timeout fires: the caller gets its TimeoutError. (The subscriber's
    own inner wait_for swallowed that cancellation on 3.10/3.11 and the caller hung for good: 300 of 300.)"""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nobody", "test", KernelChannel("inproc://nobody-kev", 0))
    loop = asyncio.get_running_loop()
    try:
        for n in range(20):
            assert sub.decode_batch([kernel_frame(100 + n)]) == []  # held: the subscriber waits with a deadline

            async def give_up() -> None:
                loop.call_later(0.005, sub._ready.set)  # what a frame's arrival does, as the caller's timer fires
                await asyncio.wait_for(sub.batches(), 0.005)

            task = asyncio.ensure_future(give_up())
            done, _ = await asyncio.wait({task}, timeout=2)
            assert done, f"round {n}: the caller never got its timeout"
            assert isinstance(task.exception(), asyncio.TimeoutError)
    finally:
        sub.close()
        ctx.term()
