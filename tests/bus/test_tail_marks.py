"""One-frame publishers (events, kernel topics, a publisher outside any event loop) mark their topics once
quiet, so a subscriber counts every message it never got, the tail of a burst included, and no other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import zmq

from flightos.bus import envelope as wire
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import Kind
from flightos.bus.gaps import Gaps
from flightos.bus.proxy import Proxy
from flightos.bus.pubsub import KernelChannel, Publisher, Subscriber
from flightos.testing import eventually
from tests.bus.tail_publishers import EACH

KEY = ("svc", "ev.svc")


def gaps_of(*prefixes: str) -> Gaps:
    """Gap accounting as a subscriber to ``prefixes`` keeps it."""
    gaps = Gaps()
    gaps.prefixes.extend(prefixes or ("",))
    return gaps


def test_a_late_joiner_counts_nothing_before_its_first_message_or_mark() -> None:
    """What was sent before a subscriber's first message (or first mark) of a topic is not a loss, when
    nothing shows the subscriber was there when the topic began."""
    gaps = gaps_of("tm.", "ev.")
    gaps.message(KEY, 500, False, 10_000)
    gaps.mark(("svc", "tm.x"), 80, False, born_ns=9_000)  # born before anything of svc reached us
    gaps.message(("svc", "tm.x"), 81, False, 11_000)
    gaps.mark(KEY, 500, False, born_ns=5_000)  # ev.svc began before its first message here, seq 500
    assert gaps.lost == 0
    gaps.mark(("other", "tm.y"), 7, False)  # a mark without its topic's birth (an empty batch): no proof
    assert gaps.lost == 0


def test_a_topic_born_while_we_listened_counts_what_never_came() -> None:
    """A topic born after its publisher's messages already reached us under the same subscription: a mark
    with none of its messages delivered counts them all, a first message past 1 counts the ones before."""
    gaps = gaps_of("tm.")
    gaps.message(("svc", "tm.warm"), 1, False, 1_000)
    gaps.mark(("svc", "tm.data"), 2_000, False, born_ns=2_000)
    assert gaps.lost == 2_000
    gaps.message(("svc", "tm.part"), 1_501, False, 3_500)
    assert gaps.lost == 2_000  # not yet known: it may have joined late
    gaps.mark(("svc", "tm.part"), 2_000, False, born_ns=3_000)
    assert gaps.lost == 2_000 + 1_500 + 499
    gaps.mark(("svc", "ev.svc"), 5, False, born_ns=2_000)  # not under a prefix that reached us: no proof
    gaps.mark(("other", "tm.data"), 5, False, born_ns=2_000)  # nor from a publisher that did
    assert gaps.lost == 4_000 - 1


def test_gaps_and_tail_marks_are_counted_once() -> None:
    """A gap counts its length; a mark counts what was sent past the last message; repeating it adds nothing."""
    gaps = gaps_of()
    for seq in (1, 2, 5):
        gaps.message(KEY, seq, False, seq)
    assert gaps.lost == 2
    gaps.mark(KEY, 9, False, born_ns=1)
    assert gaps.lost == 6
    gaps.mark(KEY, 9, False, born_ns=1)
    gaps.message(KEY, 10, False, 10)
    gaps.mark(KEY, 10, False, born_ns=1)
    assert gaps.lost == 6


def test_a_restarted_publisher_counts_only_what_its_new_incarnation_lost() -> None:
    """Numbering from 1 again is a restart: seq 4 first means 1-3 of the new incarnation were lost."""
    gaps = gaps_of()
    for seq in range(1, 11):
        gaps.message(KEY, seq, False, seq)
    gaps.message(KEY, 1, False, 20)  # restarted, nothing lost
    gaps.message(KEY, 2, False, 21)
    assert gaps.lost == 0
    gaps.message(KEY, 1, False, 30)  # restarted again
    gaps.message(KEY, 5, False, 31)
    gaps.message(KEY, 6, False, 32)
    assert gaps.lost == 3
    for seq in range(7, 21):
        gaps.message(KEY, seq, False, 40 + seq)
    gaps.message(KEY, 4, False, 70)  # a third incarnation whose 1-3 were lost
    assert gaps.lost == 6
    gaps.mark(KEY, 2, False, born_ns=80)  # a fourth that sent 1-2, both lost: its mark is all that came (in order)
    assert gaps.lost == 8
    gaps.run(KEY, 1, 5, 90)  # a batch from a fifth, from 1: nothing lost
    gaps.run(KEY, 9, 2, 91)  # 6-8 lost
    assert gaps.lost == 11


def test_out_of_order_copies_fill_their_gap_instead_of_counting_a_restart() -> None:
    """On a vouched topic a late authentic copy fills the gap counted for it; a stale mark changes nothing."""
    gaps = gaps_of()
    for seq in (1, 2, 6, 7):
        gaps.message(KEY, seq, True, seq)
    assert gaps.lost == 3
    gaps.mark(KEY, 5, True, born_ns=1)  # a mark overtaken by later messages
    assert gaps.lost == 3
    for seq in (4, 3, 5):
        gaps.message(KEY, seq, True, seq)
    assert gaps.lost == 0
    gaps.mark(KEY, 9, True, born_ns=1)
    gaps.message(KEY, 8, True, 8)
    assert gaps.lost == 1
    gaps.message(KEY, 1, True, 100)  # not in any gap: a restart
    gaps.message(KEY, 2, True, 101)
    assert gaps.lost == 1


def test_a_mark_envelope_counts_the_tail_and_is_never_delivered() -> None:
    """A MARK envelope on a one-frame topic says how far the publisher got; handlers never see it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, "inproc://nothing", "t")
    try:

        def frame(kind: Kind, seq: int) -> bytes:
            return wire.encode_topic_frame(b"tm.one", wire.make(kind, "tm.one", "svc", "x", seq=seq))

        out = sub.decode_batch([frame(Kind.TELEMETRY, 1), frame(Kind.TELEMETRY, 2), frame(Kind.MARK, 7)])
        assert [e.seq for e in out] == [1, 2] and sub.received == 2 and sub.dropped == 5
        assert sub.decode_batch([frame(Kind.MARK, 7), frame(Kind.TELEMETRY, 8)])[0].seq == 8
        assert sub.dropped == 5
    finally:
        sub.close()
        ctx.term()


TOPICS = (("kernel", "tm.kernel.burst"), ("svc", "ev.svc"), ("script", "tm.script"))


async def test_one_frame_bursts_have_every_lost_message_counted_the_tail_included(tmp_path: Path) -> None:
    """3,000 messages each on a kernel topic, a service's events and a script's topic, from another process,
    into queues of 64 frames while the subscriber reads nothing: delivered + counted lost == sent, with the
    end of a burst lost (only a mark can tell), and nothing counted that was delivered."""
    ep = Endpoints(tmp_path)
    kev = f"ipc://{tmp_path}/kev.sock"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    loop = asyncio.get_running_loop()
    proxy = Proxy(ctx, ep.publish, ep.subscribe, sndhwm=64)
    proxy.start()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.tail_publishers", ep.publish, kev],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def tell(what: str) -> None:
        stdin.write(what + "\n")
        stdin.flush()

    async def answer() -> dict[str, int]:
        line = await asyncio.wait_for(loop.run_in_executor(None, stdout.readline), 30)
        assert line, "the publishers' process ended early"
        return dict(json.loads(line))

    sub = Subscriber(ctx, ep.subscribe, "t", KernelChannel(kev, child.pid), rcvhwm=64)
    for _, topic in TOPICS:
        sub.subscribe(topic)
    delivered = {source: 0 for source, _ in TOPICS}
    last: dict[str, int] = {}

    async def read() -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            for e in await asyncio.wait_for(sub.batches(), 0.05):
                if isinstance(e.payload, int):
                    delivered[e.source] += 1
                    last[e.source] = e.seq

    try:

        async def probes_seen() -> dict[tuple[str, str], int]:
            await read()
            return sub.gaps.last

        await eventually(probes_seen, until=lambda s: len(s) == len(TOPICS), timeout=30, what="every topic")
        tell("stop")
        probed = await answer()

        async def settled() -> tuple[int, int, dict[str, int | None]]:  # what is counted from here is the burst's
            await read()
            return len(sub._twins), len(sub._early), {s: sub.gaps.last.get((s, t)) for s, t in TOPICS}

        await eventually(settled, until=lambda v: v == (0, 0, probed), timeout=30, what=f"the last probes {probed}")
        dropped_before, forged_before = sub.dropped, sub.forged  # joining: a first twin may come before kev had us
        tell("go")  # and read nothing until the publishers are done
        sent = await answer()
        assert {s: sent[s] - probed[s] for s in sent} == {s: EACH for s in sent}

        async def accounted() -> int:
            await read()
            return sum(delivered.values()) + sub.dropped - dropped_before

        total = EACH * len(TOPICS)
        await eventually(accounted, until=lambda n: n >= total, timeout=20, what="the bursts and their marks")
        assert sub.dropped > dropped_before, "the burst never overflowed the queues: this test tested nothing"
        assert sum(delivered.values()) + sub.dropped - dropped_before == total
        assert all(n < EACH for n in delivered.values()), f"a burst lost nothing: {delivered}"
        tails = [s for s in sent if last.get(s, 0) < sent[s]]
        assert tails, "no burst lost its end: the marks were not needed"
        print(f"\nrejected: {sub.rejects.counts}; unverified {sub.unverified}, forged {sub.forged}")
        assert sub.forged == forged_before  # a proxy copy whose kernel twin was lost in the burst is no forgery
        assert sub.rejects.counts.keys() <= {"twin_lost", "not_from_kernel"}
    finally:
        with contextlib.suppress(OSError):
            tell("close")
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        sub.close()
        proxy.stop()
        ctx.term()


async def test_a_steady_topic_is_marked_when_it_stops_not_after_every_message(tmp_path: Path) -> None:
    """A topic sent once a second is quiet only when its next message is overdue (1.5 intervals), so a
    kernel topic at 1 Hz costs no mark per message; a burst's end is marked after the first delay."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, f"ipc://{tmp_path}/nobody.sock", "svc", coalesce=False)
    marked: list[str] = []
    send_mark = pub._mark

    def mark(t: Any) -> None:
        marked.append(t.name)
        send_mark(t)

    pub._mark = mark  # type: ignore[method-assign]
    try:
        for _ in range(3):
            pub.publish("tm.steady", 1)
        t = pub._topics["tm.steady"]
        t.last_ns -= 10**9  # its last interval was one second
        t.gap_ns = 10**9
        last = t.last_ns / 1e9
        pub.publish("tm.burst", 1)
        pub.publish("tm.burst", 2)
        burst_end = pub._topics["tm.burst"].last_ns / 1e9
        pub._due_marks(burst_end + 0.3)  # the burst's end is marked; the steady topic is not yet late
        assert marked == ["tm.burst"]
        pub._due_marks(last + 1.3)
        assert marked == ["tm.burst"]
        pub._due_marks(last + 1.6)
        assert marked == ["tm.burst", "tm.steady"]
    finally:
        pub.close()
        ctx.term()
