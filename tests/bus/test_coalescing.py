"""Coalesced telemetry: batches are invisible to subscribers, flush at the end of the loop iteration,
decode payloads only when read, and every message lost in a burst is counted, the tail included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import zmq

from flightos.bus import envelope as wire
from flightos.bus import pubsub
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.proxy import Proxy
from flightos.bus.pubsub import Publisher, Subscriber
from flightos.testing import eventually


@dataclass
class Bus:
    """An in-process proxy and its endpoints."""

    ctx: zmq.Context[zmq.Socket[bytes]]
    ep: Endpoints


@contextlib.asynccontextmanager
async def bus(tmp_path: Path, hwm: int = 100_000) -> AsyncIterator[Bus]:
    """A libzmq proxy on a thread, as the kernel runs it (holding ``hwm`` frames per subscriber)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    ep = Endpoints(tmp_path)
    proxy = Proxy(ctx, ep.publish, ep.subscribe, sndhwm=hwm)
    proxy.start()
    try:
        yield Bus(ctx, ep)
    finally:
        proxy.stop()
        ctx.term()


async def joined(pub: Publisher, sub: Subscriber, topic: str) -> None:
    """Publish ``topic`` each loop iteration until the subscriber has one (subscriptions travel asynchronously)."""

    async def probe() -> list[Envelope]:
        pub.publish(topic, None)
        with contextlib.suppress(asyncio.TimeoutError):
            return [
                e for e in await asyncio.wait_for(sub.batches(), 0.05) if e.topic == topic and e.source == pub.source
            ]
        return []

    await eventually(probe, until=bool, timeout=10, what=f"{topic} to reach the subscriber")


def batch_frame(topic: str, source: str, seq: int, payloads: list[bytes]) -> bytes:
    """A batch frame built by hand, each payload given as raw MessagePack."""
    items = [b"\x93" + msgpack.packb(1) + msgpack.packb(2) + p for p in payloads]  # [mono_ns, utc_ns, payload]
    return wire.encode_batch(topic.encode() + b"\x00", Kind.TELEMETRY, topic, source, seq, items)


async def test_batches_keep_order_sequence_numbers_and_prefix_filtering(tmp_path: Path) -> None:
    """Three topics published in one iteration arrive as a few frames; the subscriber of ``tm.a.`` sees its
    two topics whole and in order, numbered from 1, and nothing of ``tm.b``."""
    async with bus(tmp_path) as b:
        pub = Publisher(b.ctx, b.ep.publish, "svc")
        sub = Subscriber(b.ctx, b.ep.subscribe, "t")
        sub.subscribe("tm.a.")
        try:
            await joined(pub, sub, "tm.a.join")
            frames_before = pub.frames
            for i in range(1000):
                pub.publish("tm.a.x", {"i": i})
                pub.publish("tm.b", i)
                pub.publish("tm.a.y", [i, "y"])
            got: list[Envelope] = []
            while len([e for e in got if e.topic != "tm.a.join"]) < 2000:
                got += await asyncio.wait_for(sub.batches(), 5)
            got = [e for e in got if e.topic != "tm.a.join"]
            assert [e.payload["i"] for e in got if e.topic == "tm.a.x"] == list(range(1000))
            assert [e.seq for e in got if e.topic == "tm.a.x"] == list(range(1, 1001))
            assert [e.payload for e in got if e.topic == "tm.a.y"] == [[i, "y"] for i in range(1000)]
            assert {e.source for e in got} == {"svc"} and {e.kind for e in got} == {Kind.TELEMETRY}
            assert sub.dropped == 0 and sub.rejects.total == 0
            assert pub.frames - frames_before < 40  # 3000 messages left as a handful of batch frames
        finally:
            pub.close()
            sub.close()


async def test_an_isolated_message_leaves_at_once_and_a_burst_at_the_end_of_its_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cap and no timer holds a message: an isolated one is sent when published; messages close together are
    sent together when the loop iteration that published them ends. (The gap that tells them apart is set to
    its extremes here, so that a preempted test process cannot blur the two cases.)"""
    async with bus(tmp_path) as b:
        pub = Publisher(b.ctx, b.ep.publish, "svc")
        sub = Subscriber(b.ctx, b.ep.subscribe, "t")
        sub.subscribe("tm.svc.")
        try:
            await joined(pub, sub, "tm.svc.join")
            await asyncio.sleep(0)  # a fresh iteration
            monkeypatch.setattr(pubsub, "ALONE_GAP_NS", 0)  # every message that starts a batch is isolated
            frames = pub.frames
            pub.publish("tm.svc.lone", 42)
            assert pub.frames == frames + 1  # sent at once
            env = await asyncio.wait_for(sub.next(), 5)
            assert (env.topic, env.payload, env.seq) == ("tm.svc.lone", 42, 1)
            monkeypatch.setattr(pubsub, "ALONE_GAP_NS", 10**15)  # every message is part of a burst
            frames = pub.frames
            for i in range(3):
                pub.publish("tm.svc.many", i)
            assert pub.frames == frames  # held while this iteration runs
            await asyncio.sleep(0)  # one iteration: the flush scheduled before this task's wake-up ran
            assert pub.frames == frames + 1
            got: list[Envelope] = []
            while len(got) < 3:
                got += [e for e in await asyncio.wait_for(sub.batches(), 5) if e.topic == "tm.svc.many"]
            assert [(e.seq, e.payload) for e in got] == [(1, 0), (2, 1), (3, 2)]
        finally:
            pub.close()
            sub.close()


def test_payloads_are_decoded_only_when_read() -> None:
    """Messages of a batch carry their payload encoded: one that would not decode harms only a reader of it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nothing", "t")
    try:
        bad_utf8 = b"\xa2\xff\xfe"  # a MessagePack str that is not UTF-8: fails only when decoded
        frame = batch_frame("tm.cam.img", "cam", 1, [msgpack.packb({"ok": 1}), bad_utf8, msgpack.packb(3)])
        envs = sub.decode_batch([frame])
        assert [(e.topic, e.source, e.seq) for e in envs] == [("tm.cam.img", "cam", n) for n in (1, 2, 3)]
        assert sub.rejects.total == 0 and sub.received == 3
        assert envs[0].payload == {"ok": 1} and envs[2].payload == 3
        with pytest.raises(FrameError) as info:
            _ = envs[1].payload
        assert info.value.reason == "malformed_payload"
    finally:
        sub.close()
        ctx.term()


async def test_a_payload_that_fails_when_read_is_counted_as_rejected(tmp_path: Path) -> None:
    """Subscriber.run counts the bad payload a handler read as a rejected frame, and goes on."""
    async with bus(tmp_path) as b:
        raw = b.ctx.socket(zmq.PUB)
        raw.connect(b.ep.publish)
        sub = Subscriber(b.ctx, b.ep.subscribe, "t")
        sub.subscribe("tm.cam.")
        seen: list[int] = []
        done = asyncio.Event()

        def handler(env: Envelope) -> None:
            seen.append(env.payload)  # reads every payload: the bad one raises here
            if env.seq == 3:
                done.set()

        task = asyncio.create_task(sub.run(handler))
        try:
            frame = batch_frame("tm.cam.img", "cam", 1, [msgpack.packb(1), b"\xa2\xff\xfe", msgpack.packb(3)])

            async def sent() -> bool:
                raw.send(frame)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.05)
                return done.is_set()

            await eventually(sent, until=bool, timeout=10, what="the batch to be handled")
            assert seen[:2] == [1, 3] and sub.rejects.counts.get("malformed_payload", 0) >= 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raw.close(linger=0)
            sub.close()


def test_bad_batches_are_rejected_and_counted_by_reason() -> None:
    """Malformed, truncated, mislabelled and kernel-topic batches are refused and counted; older receivers
    that know only single envelopes refuse a batch as an unknown version."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nothing", "t")
    try:
        good = batch_frame("tm.a", "svc", 1, [msgpack.packb(1)])
        truncated = good[:-3]
        mislabelled = b"tm.b" + good[4:]
        not_items = b"tm.a\x00" + msgpack.packb([2, 1, "tm.a", "svc", 1, "nope"])
        forged = batch_frame("ev.kernel", "kernel", 1, [msgpack.packb(1)])
        out = sub.decode_batch([truncated, mislabelled, not_items, forged, good])
        assert [e.payload for e in out] == [1]
        assert sub.rejects.counts == {"malformed": 3, "not_from_kernel": 1} and sub.forged == 1
        with pytest.raises(FrameError) as info:
            wire.decode_topic_frame(good)  # what a receiver that predates batches does with one
        assert info.value.reason == "unknown_version"
        assert wire.peek_topic_frame(good) == ("tm.a", "svc")
    finally:
        sub.close()
        ctx.term()


def test_sequence_marks_count_the_tail_and_restarts_are_not_gaps() -> None:
    """An empty batch says how far the publisher got: losses after the last delivered frame are counted."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nothing", "t")
    try:
        one = [msgpack.packb(0)]
        sub.decode_batch([batch_frame("tm.a", "svc", 1, one * 10), batch_frame("tm.a", "svc", 31, one * 10)])
        assert sub.dropped == 20 and sub.received == 20
        sub.decode_batch([batch_frame("tm.a", "svc", 61, [])])  # a mark: sent up to 60, delivered up to 40
        assert sub.dropped == 40 and sub.received == 20
        sub.decode_batch([batch_frame("tm.a", "svc", 61, [])])  # the mark again: nothing new
        assert sub.dropped == 40
        sub.decode_batch([batch_frame("tm.a", "svc", 1, one * 5)])  # the publisher restarted
        assert sub.dropped == 40 and sub.received == 25
    finally:
        sub.close()
        ctx.term()


async def test_a_burst_past_every_hwm_has_every_lost_message_counted(tmp_path: Path) -> None:
    """16 publishers x 2,000 messages at once through a proxy and subscriber that hold 8 frames each: what
    is not delivered is counted, including whole batches lost at the end of each burst."""
    publishers, burst = 16, 2000
    async with bus(tmp_path, hwm=8) as b:
        pubs = [Publisher(b.ctx, b.ep.publish, f"p{i}") for i in range(publishers)]
        sub = Subscriber(b.ctx, b.ep.subscribe, "t", rcvhwm=8)
        sub.subscribe("tm.")
        try:
            for p in pubs:  # each (source, topic) is known to the subscriber before the burst
                await joined(p, sub, "tm.burst")
            dropped_before = sub.dropped
            for p in pubs:
                for _ in range(burst):
                    p.publish("tm.burst", b"x" * 48)
            last: dict[str, int] = {}
            delivered = 0

            async def accounted() -> int:
                nonlocal delivered
                with contextlib.suppress(asyncio.TimeoutError):
                    for e in await asyncio.wait_for(sub.batches(), 0.1):
                        if e.payload == b"x" * 48:
                            delivered += 1
                            last[e.source] = e.seq
                return delivered + sub.dropped - dropped_before

            sent = burst * publishers
            await eventually(accounted, until=lambda n: n >= sent, timeout=20, what="the burst and its marks")
            assert sub.dropped > dropped_before, "the burst never overflowed the HWMs: this test tested nothing"
            assert delivered + sub.dropped - dropped_before == sent
            tails = [p.source for p in pubs if last.get(p.source, 0) < burst + 1]
            assert tails, "no burst lost its tail: the sequence marks were not needed"
        finally:
            for p in pubs:
                p.close()
            sub.close()


def test_a_batch_is_plain_messagepack_that_independent_decoders_read() -> None:
    """After its topic and separator a batch frame is one MessagePack array, as the design page describes it."""
    items = [wire.encode_item(10 + i, 20 + i, {"i": i}) for i in range(300)]  # past a fixarray's 15
    frame = wire.encode_batch(b"tm.cam.img\x00", Kind.TELEMETRY, "tm.cam.img", "cam", 2**40, items)
    topic, body = frame.split(b"\x00", 1)
    assert topic == b"tm.cam.img" and body[0] == wire.BATCH_HEAD
    assert msgpack.unpackb(body) == [2, 1, "tm.cam.img", "cam", 2**40, [[10 + i, 20 + i, {"i": i}] for i in range(300)]]
    mark = wire.encode_batch(b"tm.a\x00", Kind.TELEMETRY, "tm.a", "svc", 7, [])
    assert msgpack.unpackb(mark.split(b"\x00", 1)[1]) == [2, 1, "tm.a", "svc", 7, []]
