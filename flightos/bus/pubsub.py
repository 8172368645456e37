"""Telemetry and events: publishers that number messages per topic, subscribers that count gaps."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import structlog
import zmq

from flightos.bus import envelope as wire
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.gaps import Gaps

log = structlog.get_logger("flightos.bus")
_NOBLOCK = int(zmq.NOBLOCK)
_mono_ns = time.monotonic_ns
_utc_ns = time.time_ns
_encode_item_into = wire.encode_item_into
_running_loop = asyncio._get_running_loop
"""The running loop or None, without get_running_loop's exception (asked once per batch, not per message)."""

PUB_HWM = 10_000
SUB_HWM = 100_000
DRAIN_BUDGET = 4096
"""Messages (not frames: a batch holds many) a subscriber decodes per drain before handing them on."""
KERNEL = "kernel"
KERNEL_TOPICS = ("ev.kernel", "tm.kernel.", "tm.hal.")
"""The kernel's topics: delivered only when the kernel's own endpoint (``kev.sock``) vouches for them."""
VOUCHED_PREFIXES = ("ev.", "dl.")
"""Events and downlink products of services: the kernel checks who sent each one (its pid, its namespace,
its ``[acl]``) and vouches for it on ``kev.sock``, so no service can raise events or products as another."""
PEER_ADDRESS = "Peer-Address"
TWIN_WAIT_S = 0.5
"""How long a kernel frame waits for its other copy (proxy or kernel endpoint) before it is judged alone."""
TWIN_MAX = 10_000
"""Kernel frames held at once per subscriber; past it a proxy copy without its twin is dropped at once."""
VERDICT_WAIT_S = 2.5
"""How much longer a twinless proxy copy beyond the kernel endpoint's last number waits for its mark (sent
0.25 s and 2 s after a topic goes quiet) before it is judged forged rather than lost there."""
KEV_HOLES = 64
"""Skipped ranges remembered per topic on the kernel's endpoint."""


def kernel_topic(topic: str, source: str) -> bool:
    """Whether a publication needs the kernel's word: the kernel's own, or a service's event or product."""
    return source == KERNEL or topic.startswith(VOUCHED_PREFIXES) or topic.startswith(KERNEL_TOPICS[1:])


def vouched_namespace(topic: str, service: str) -> bool:
    """Whether ``topic`` is one of ``service``'s own events or products (``ev.<name>[.…]``, ``dl.<name>.…``)."""
    return topic == f"ev.{service}" or topic.startswith((f"ev.{service}.", f"dl.{service}."))


@dataclass(frozen=True)
class KernelChannel:
    """Where the kernel publishes its own topics, and the pid that must be bound there."""

    endpoint: str
    pid: int
    """The kernel's pid: a frame from any other process on that endpoint is refused (0: not checked)."""


@dataclass
class RejectCounter:
    """Counts frames rejected by a receiver, by reason, and logs the first few of each."""

    where: str
    counts: dict[str, int] = field(default_factory=dict)
    log_first: int = 5
    on_report: Callable[[str, FrameError, int], None] | None = None

    def reject(self, err: FrameError) -> None:
        """Count one rejected frame; report it while the count for that reason is small, then every 1000th."""
        n = self.counts.get(err.reason, 0) + 1
        self.counts[err.reason] = n
        if n <= self.log_first or n % 1000 == 0:
            log.warning("bus.frame_rejected", where=self.where, reason=err.reason, detail=err.detail, count=n)
            if self.on_report is not None:
                self.on_report(self.where, err, n)

    @property
    def total(self) -> int:
        """All rejected frames."""
        return sum(self.counts.values())


BATCH_MAX_BYTES = 65_536
"""A topic's batch is sent once its encoded messages reach this size (a larger message goes alone)."""
BATCH_MAX_MESSAGES = 256
"""…or this many messages: HWMs count frames, so this bounds the messages one frame can hold."""
ALONE_GAP_NS = 200_000
"""A message that starts a batch leaves at once unless another left at once less than this long ago (or a
flush is pending): isolated messages wait for nothing, and a burst is coalesced from its second message on."""
MARK_AFTER_S = (0.25, 2.0)
"""After a topic falls quiet, its last sequence number is sent this long after, then again this long after
that, so a subscriber counts messages lost at the tail of a burst too."""
MARK_PERIODS = 1.5
"""…or, for a topic sent at a steady rate, once this many of its last intervals have passed without a message
(up to MARK_PERIODIC_MAX_S): a 1 Hz topic is marked only when it stops, not after every message."""
MARK_PERIODIC_MAX_S = 2.0
MARK_SLACK_S = 0.1
"""Marks due this soon are sent with those due now: one publisher's topics are marked together (a subscriber
wakes once for them, not once per topic)."""
_MARKS = len(MARK_AFTER_S)
_MARK = Kind.MARK.value


def _jitter(delay: float) -> float:
    """``delay`` plus up to half again: publishers quiet since one burst do not all send their marks at once."""
    return delay * (1.0 + random.random() / 2)


class _Topic:
    """What a publisher keeps per topic: its frame prefix, its last sequence number, its open batch."""

    __slots__ = (
        "born_ns",
        "coalesce",
        "first",
        "gap_ns",
        "items",
        "last_ns",
        "lead",
        "mark_at",
        "marks_left",
        "name",
        "prefix",
        "quiet_s",
        "room",
        "seq",
        "size",
    )

    def __init__(self, name: str, prefix: bytes, source: str, coalesce: bool) -> None:
        self.name = name
        self.prefix = prefix
        self.lead = wire.batch_lead(prefix, Kind.TELEMETRY.value, name, source)
        self.room = wire.batch_room(self.lead)
        self.coalesce = coalesce
        self.seq = 0
        self.first = 0
        self.items: list[bytes | memoryview] = []
        self.size = 0
        self.marks_left = 0
        self.mark_at = 0.0
        self.quiet_s = MARK_AFTER_S[0]
        self.born_ns = _mono_ns()
        """When the topic's first message left (about): its marks say it, so a subscriber can tell whether it
        was there from the start."""
        self.last_ns = self.born_ns
        """When a message (or batch) last left on this topic (monotonic ns): its mark waits for quiet after it."""
        self.gap_ns = 0
        """The interval before that one: a steady topic is quiet only once its next message is overdue."""


class Publisher:
    """Publishes envelopes under dotted topics through the kernel proxy, numbering each topic.

    Inside a running event loop a service's telemetry is coalesced: what it publishes on one topic in one
    loop iteration leaves as one batch frame at the end of that iteration (or at a size cap). The kernel's
    topics, events and products (which the kernel vouches for frame by frame) always go one message per
    frame, and before them every open batch, so their order with the publisher's telemetry is kept.
    Every topic's last sequence number is sent once it falls quiet (a mark), on the event loop's timer,
    or outside a loop on a thread of the publisher's own (its sends then take a lock).
    """

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        source: str,
        *,
        mirror: str | None = None,
        coalesce: bool = True,
        sndhwm: int | None = None,
    ) -> None:
        self.source = source
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, PUB_HWM if sndhwm is None else sndhwm)
        self.sock.setsockopt(zmq.LINGER, LINGER_MS)
        self.sock.connect(endpoint)
        self.mirror: zmq.Socket[bytes] | None = None
        if mirror is not None:  # the kernel: every frame also on its own endpoint, which only it binds
            self.mirror = ctx.socket(zmq.PUB)
            self.mirror.setsockopt(zmq.SNDHWM, PUB_HWM if sndhwm is None else sndhwm)
            self.mirror.setsockopt(zmq.LINGER, LINGER_MS)
            self.mirror.bind(mirror)
        self.coalesce = coalesce and mirror is None
        self._topics: dict[str, _Topic] = {}
        self._open: list[_Topic] = []
        """Topics with a batch waiting for the end of this loop iteration, in the order they were opened."""
        self._flush_handle: asyncio.Handle | None = None
        self._marking: set[_Topic] = set()
        self._alone_ns = 0
        """When this publisher last sent a message at once (alone), monotonic ns."""
        self._mark_handle: asyncio.TimerHandle | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._send = self.sock.send if self.mirror is None else self._send_both
        self.sent = 0
        self.frames = 0
        self.vouch: Callable[[bytes], None] | None = None
        """A service's host: also hands each event or product frame to the kernel, which vouches for it."""
        self._lock: threading.RLock | None = None
        """Outside an event loop: held for every send, since the marking thread sends too (reentrant: publish
        may flush)."""
        self._marker: threading.Thread | None = None
        self._kick = threading.Event()
        self._closed = False

    def _send_both(self, frame: bytes) -> None:
        """The mirror first: a subscriber then usually holds the authentic copy when the proxy's arrives."""
        assert self.mirror is not None
        self.mirror.send(frame)
        self.sock.send(frame)

    def _topic(self, topic: str) -> _Topic:
        if "\x00" in topic or not topic.isascii():
            raise ValueError(f"topics are ASCII without NUL: {topic!r}")
        t = self._topics[topic] = _Topic(
            topic,
            topic.encode() + wire.TOPIC_SEPARATOR,
            self.source,
            self.coalesce and not kernel_topic(topic, self.source),
        )
        return t

    def publish(self, topic: str, payload: object, kind: int = Kind.TELEMETRY.value) -> int:
        """Send one message (never blocks; at the HWM ZeroMQ drops, which the seq reveals); return its seq."""
        t = self._topics.get(topic)
        if t is None:
            t = self._topic(topic)
        seq = t.seq + 1
        if t.coalesce and kind == 1:
            items = t.items
            if items:  # the hottest path of the bus: one small encode, appended to the topic's open batch
                item = self._encode((_mono_ns(), _utc_ns(), payload))
                t.seq = seq
                self.sent += 1
                items.append(item)
                t.size += len(item)
                if t.size >= BATCH_MAX_BYTES or len(items) >= BATCH_MAX_MESSAGES:
                    self._send_batch(t)
                return seq
            if self._lock is None:
                return self._start_batch(t, seq, payload)
            with self._lock:  # a marking thread runs (no event loop here)
                return self._start_batch(t, seq, payload)
        if self._lock is None:
            return self._one_frame(t, seq, payload, kind)
        with self._lock:
            return self._one_frame(t, seq, payload, kind)

    def _start_batch(self, t: _Topic, seq: int, payload: object) -> int:
        """The first message of a topic's batch: sent alone at once, or held for the end of the iteration."""
        items = t.items
        # A batch starts: encoded behind room for a head, so that if it leaves alone (an isolated message, or
        # a large one) the frame is sealed in place instead of copied again.
        now = _mono_ns()
        buf = bytearray(t.room)
        _encode_item_into(buf, now, _utc_ns(), payload)
        t.seq = seq
        t.first = seq
        self.sent += 1
        alone = self._flush_handle is None and now - self._alone_ns >= ALONE_GAP_NS
        if alone or len(buf) - t.room >= BATCH_MAX_BYTES:
            start = wire.seal_batch(buf, t.room, t.lead, seq, 1)
            self.sock.send(memoryview(buf)[start:])
            self._sent_batch(t)
            self._arm_mark(t, now / 1e9)
            if alone:
                self._alone_ns = now
            return seq
        items.append(memoryview(buf)[t.room :])
        t.size = len(buf) - t.room
        if self._flush_handle is None:
            loop = _running_loop()
            if loop is None:  # no event loop to flush at the end of: this message goes now
                timed = t.mark_at if t.marks_left == _MARKS else 0.0
                self._send_batch(t)
                if timed:  # its mark already waits for quiet (after last_ns)
                    t.mark_at = timed
                else:
                    self._watch(t, now)
                return seq
            self._flush_handle = loop.call_soon(self.flush)
        self._open.append(t)
        return seq

    def _one_frame(self, t: _Topic, seq: int, payload: object, kind: int) -> int:
        """A message in a frame of its own (a kernel topic, an event, a product, or coalescing off)."""
        if self._open:
            self.flush()  # what this publisher coalesced so far leaves first: per-publisher order is kept
        now = _mono_ns()
        frame = t.prefix + self._encode((wire.VERSION, kind, t.name, self.source, seq, now, _utc_ns(), "", payload))
        t.seq = seq
        self._send(frame)
        self.frames += 1
        if self.vouch is not None and t.name.startswith(VOUCHED_PREFIXES):
            self.vouch(frame)
        self.sent += 1
        t.gap_ns = now - t.last_ns
        t.last_ns = now
        if t.marks_left != _MARKS:  # not yet waiting for quiet since its last mark
            self._watch(t, now)
        return seq

    def _watch(self, t: _Topic, now_ns: int) -> None:
        """A one-frame topic sent again: mark it once it has been quiet for the first of MARK_AFTER_S."""
        self._marking.add(t)
        t.marks_left = _MARKS
        t.mark_at = 0.0
        self._arm_mark(t, now_ns / 1e9)
        t.quiet_s = t.mark_at - now_ns / 1e9

    def _send_batch(self, t: _Topic) -> None:
        """Send a topic's open batch now (it stays listed in ``_open`` until the flush, empty)."""
        items = t.items
        if not items:
            return
        self.sock.send(wire.batch_frame(t.lead, t.first, items))
        t.items = []
        self._sent_batch(t)

    def _sent_batch(self, t: _Topic) -> None:
        """Bookkeeping after a topic's batch left: the next one's first number, and the topic's marks."""
        self.frames += 1
        t.first = t.seq + 1
        t.size = 0
        self._marking.add(t)
        t.marks_left = len(MARK_AFTER_S)
        t.mark_at = 0.0  # set at the flush: a busy topic is not marked
        now = _mono_ns()
        t.gap_ns = now - t.last_ns
        t.last_ns = now

    def flush(self) -> None:
        """Send every open batch now (called at the end of the loop iteration that opened them)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        opened, self._open = self._open, []
        for t in opened:
            self._send_batch(t)
        if opened:
            now = time.monotonic()
            for t in opened:
                if t.mark_at == 0.0 and t.marks_left:
                    self._arm_mark(t, now)

    def _arm_mark(self, t: _Topic, now: float) -> None:
        """Send ``t``'s sequence mark once it has been quiet for the first of MARK_AFTER_S (unless busy again)."""
        delay = _jitter(MARK_AFTER_S[0])
        t.mark_at = now + delay
        handle = self._mark_handle
        if handle is not None and handle.when() <= t.mark_at:  # asyncio's loop.time() is time.monotonic()
            return  # the timer already set comes first
        loop = _running_loop()
        if loop is None:  # no loop to time the mark: the publisher's own thread does
            if self._closed:
                return
            if self._marker is None:
                self._start_marker()
            self._kick.set()
            return
        if handle is not None:
            handle.cancel()  # set for a later (second) mark of another topic: this one is due sooner
        self._mark_handle = loop.call_later(delay, self._send_marks)

    def _send_marks(self) -> None:
        """Tell subscribers the last sequence number of each topic that fell quiet (their tail losses show)."""
        self._mark_handle = None
        now = time.monotonic()
        with self._lock or contextlib.nullcontext():  # a publisher used from a thread too has a marking thread
            wake = self._due_marks(now)
        if wake is not None:
            loop = _running_loop()
            if loop is not None:
                self._mark_handle = loop.call_later(max(0.0, wake - now), self._send_marks)

    def _due_marks(self, now: float) -> float | None:
        """Send the marks due at ``now``; return when the next one is due (None: none is)."""
        wake: float | None = None
        for t in list(self._marking):
            if t.items or t.mark_at == 0.0:  # a batch is open: its flush will schedule this topic's mark
                continue
            if t.marks_left == _MARKS and t.last_ns:  # quiet since the last message, and past its usual interval
                quiet = max(t.quiet_s, min(t.gap_ns * (MARK_PERIODS / 1e9), MARK_PERIODIC_MAX_S))
                t.mark_at = max(t.mark_at, t.last_ns / 1e9 + quiet)
            if t.mark_at > now + MARK_SLACK_S:
                wake = t.mark_at if wake is None else min(wake, t.mark_at)
                continue
            self._mark(t)
            step = len(MARK_AFTER_S) - t.marks_left
            if step < len(MARK_AFTER_S):
                t.mark_at = now + _jitter(MARK_AFTER_S[step])
                wake = t.mark_at if wake is None else min(wake, t.mark_at)
            else:
                self._marking.discard(t)
        return wake

    def _mark(self, t: _Topic) -> None:
        """A MARK envelope: the publisher has sent up to ``t.seq`` on this topic, whose first message left at
        ``t.born_ns`` (the payload). Vouched for by the kernel as the topic's messages are."""
        t.marks_left -= 1
        with contextlib.suppress(zmq.ZMQError):
            frame = t.prefix + self._encode(
                (wire.VERSION, _MARK, t.name, self.source, t.seq, _mono_ns(), _utc_ns(), "", t.born_ns)
            )
            self._send(frame)
            if self.vouch is not None and t.name.startswith(VOUCHED_PREFIXES):
                self.vouch(frame)

    def _start_marker(self) -> None:
        """Outside an event loop: a thread sends the marks, and from now on every send takes a lock (in a loop,
        or on the hot path of a batch, which exists only in a loop, nothing is locked)."""
        self._lock = threading.RLock()
        self._marker = threading.Thread(target=self._marker_run, name=f"flightos-marks-{self.source}", daemon=True)
        self._marker.start()

    def _marker_run(self) -> None:
        """The marking thread: sleeps until the next mark is due or a topic is watched, until close."""
        assert self._lock is not None
        wait: float | None = None
        while True:
            self._kick.wait(wait)
            self._kick.clear()
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                wake = self._due_marks(now)
            wait = None if wake is None else max(0.0, wake - now)

    def last_seq(self) -> dict[str, int]:
        """The last sequence number of every topic published."""
        return {name: t.seq for name, t in self._topics.items()}

    def mirror_frame(self, frame: bytes) -> None:
        """The kernel vouches for a frame someone else published (a checked service event, an imported one)."""
        if self.mirror is not None:
            self.mirror.send(frame)

    def close(self) -> None:
        """Send what is open and each topic's last sequence number, then close with bounded linger."""
        with self._lock or contextlib.nullcontext():
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(zmq.ZMQError):
                self.flush()
                for t in self._marking:
                    self._mark(t)
            self._marking.clear()
            if self._mark_handle is not None:
                self._mark_handle.cancel()
                self._mark_handle = None
            self.sock.close(linger=LINGER_MS)
            if self.mirror is not None:
                self.mirror.close(linger=LINGER_MS)
        if self._marker is not None:
            self._kick.set()
            if self._marker is not threading.current_thread():
                self._marker.join(1.0)


Handler = Callable[[Envelope], Awaitable[None] | None]


class Subscriber:
    """Receives topics by prefix, counts sequence gaps (dropped messages) and rejected frames.

    The kernel's topics (``KERNEL_TOPICS``, or any frame whose source is ``kernel``) arrive through
    the shared proxy, in the proxy's order as every other topic, but one is delivered only when the
    same bytes also came from the kernel's own endpoint (which only the kernel binds; every frame
    there is checked to come from the kernel's pid). A proxy copy without that twin is a forgery:
    held ``TWIN_WAIT_S`` in case the twin is late, then dropped and counted (``forged``). An
    authentic frame whose proxy copy never comes (the proxy dropped it) is delivered after the
    wait. Without a ``kernel`` channel the subscriber delivers no kernel topics at all.
    """

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        where: str,
        kernel: KernelChannel | None = None,
        *,
        rcvhwm: int = SUB_HWM,
    ) -> None:
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.kernel = kernel
        self.ksock: zmq.Socket[bytes] | None = None
        if kernel is not None:
            self.ksock = ctx.socket(zmq.SUB)
            self.ksock.setsockopt(zmq.RCVHWM, rcvhwm)
            self.ksock.setsockopt(zmq.LINGER, 0)
            self.ksock.connect(kernel.endpoint)
        self._kpeer_ok: set[str] = set()
        self._twins: dict[bytes, float] = {}
        """Authentic kernel frames (from kev.sock) waiting for their proxy copy, with a deadline."""
        self._early: dict[bytes, tuple[float, Envelope]] = {}
        """Proxy copies of kernel topics still without an authentic twin, with a deadline."""
        self._kev_last: dict[tuple[str, str], int] = {}
        self._kev_holes: dict[tuple[str, str], collections.deque[tuple[int, int]]] = {}
        """Sequence numbers the kernel's endpoint skipped per (source, topic): twins lost there, not forgeries."""
        self._verdict: set[bytes] = set()
        """Proxy copies past their wait, held until the kernel's endpoint shows whether it skipped them."""
        self.unverified = 0
        """Proxy copies dropped because their authentic twin was lost on the kernel's endpoint (counted lost too)."""
        self._ready = asyncio.Event()
        self._asock: AsyncSocket | None = None
        self._kasock: AsyncSocket | None = None
        self.gaps = Gaps()
        self._last = self.gaps.last
        self.received = 0
        self.forged = 0
        """Kernel topics refused: no authentic twin on the kernel's endpoint, or a stranger bound there."""
        self.rejects = RejectCounter(where)
        self._backlog: collections.deque[Envelope] = collections.deque()

    def subscribe(self, prefix: str) -> None:
        """Receive every topic starting with ``prefix`` (end it with '.' to match whole segments)."""
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        if self.ksock is not None:
            self.ksock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        if prefix not in self.gaps.prefixes:
            self.gaps.prefixes.append(prefix)

    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving a prefix subscribed before."""
        self.sock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        if self.ksock is not None:
            self.ksock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        if prefix in self.gaps.prefixes:
            self.gaps.prefixes.remove(prefix)
            self.gaps.since = {k: v for k, v in self.gaps.since.items() if k[1] != prefix}

    @property
    def dropped(self) -> int:
        """Messages never delivered: sequence gaps, and what publishers' marks say was sent past the last one."""
        return self.gaps.lost

    def _deliver(self, env: Envelope, out: list[Envelope], reorders: bool) -> None:
        """Count a single envelope's place in its topic; a message goes to ``out``, a mark only counts."""
        key = (env.source, env.topic)
        seq = env.seq
        if env.kind == _MARK:
            born = env.payload
            self.gaps.mark(key, seq, reorders, born if type(born) is int else None)
            return
        if self._last.get(key, -1) + 1 == seq:  # the common case, inline
            self._last[key] = seq
        else:
            self.gaps.message(key, seq, reorders, env.mono_ns)
        out.append(env)
        self.received += 1

    def _forgery(self, topic: str, source: str) -> None:
        self.forged += 1
        self.rejects.reject(
            FrameError("not_from_kernel", f"{topic} from {source!r} through the shared proxy, never sent by the kernel")
        )

    def decode_batch(self, frames: list[bytes]) -> list[Envelope]:
        """Decode frames from the proxy, counting gaps, rejecting bad frames and forgeries (never raising)."""
        out: list[Envelope] = []
        for frame in frames:
            self._take(frame, out)
        return out

    def _take(self, frame: bytes, out: list[Envelope]) -> None:
        """Decode one frame from the proxy into ``out``: a batch's messages, or one envelope (or nothing)."""
        sep = frame.find(b"\x00")
        if sep > 0 and wire.is_batch(frame, sep):
            try:
                head = wire.decode_batch_frame(frame, sep)
            except FrameError as err:
                self.rejects.reject(err)
                return
            if kernel_topic(head.topic, head.source):  # the kernel vouches for single frames only
                self._forgery(head.topic, head.source)
                return
            key = (head.source, head.topic)
            n = len(head.items)
            if n:
                self.gaps.run(key, head.seq, n, head.items[0][0])
                out.extend(wire.unpack(head))
                self.received += n
            else:  # a mark: the publisher has sent up to seq - 1 (never stale: one publisher's frames keep order)
                self.gaps.mark(key, head.seq - 1, False)
            return
        try:
            topic, env = wire.decode_topic_frame(frame)
        except FrameError as err:
            self.rejects.reject(err)
            return
        vouched = kernel_topic(topic, env.source)
        if vouched and self._twins.pop(frame, None) is None:
            # no authentic copy (yet): hold it (never stalling the rest), or drop it without a kernel channel
            if self.kernel is not None:
                if len(self._early) < TWIN_MAX:
                    self._early[frame] = (time.monotonic() + TWIN_WAIT_S, env)
                else:
                    self._forgery(topic, env.source)
            return
        self._deliver(env, out, vouched)  # a vouched topic's copies can come out of order (late twins)

    def take_kernel_frames(self, frames: list[zmq.Frame]) -> list[Envelope]:
        """Frames from the kernel's endpoint: checked to come from the kernel's pid, then matched with their
        proxy copies; returns those whose proxy copy came first (delivered now, a little late)."""
        assert self.kernel is not None
        out: list[Envelope] = []
        deadline = time.monotonic() + TWIN_WAIT_S
        for frame in frames:
            peer = _peer(frame)
            if peer not in self._kpeer_ok:
                if self.kernel.pid and not peer.endswith(f":{self.kernel.pid}"):
                    self.forged += 1
                    self.rejects.reject(
                        FrameError(
                            "not_from_kernel",
                            f"{self.kernel.endpoint} is bound by {peer or 'an unknown peer'}, not the kernel "
                            f"(pid {self.kernel.pid})",
                        )
                    )
                    continue
                self._kpeer_ok.add(peer)
            data = frame.bytes
            self._kev_seq(data)
            early = self._early.pop(data, None)
            if early is not None:
                self._verdict.discard(data)
                self._deliver(early[1], out, True)
            elif len(self._twins) < TWIN_MAX:
                self._twins[data] = deadline
        return out

    def _kev_seq(self, data: bytes) -> None:
        """Note where the kernel's endpoint skipped sequence numbers (its own queue overflowed)."""
        head = wire.peek_seq(data)
        if head is None:
            return
        topic, source, seq, kind = head
        key = (source, topic)
        last = self._kev_last.get(key)
        upto = seq if kind == Kind.MARK else seq - 1  # a mark's number is the last one sent, itself a message
        if last is not None and upto > last:
            holes = self._kev_holes.get(key)
            if holes is None:
                holes = self._kev_holes[key] = collections.deque(maxlen=KEV_HOLES)
            holes.append((last + 1, upto))
        if last is None or seq > last:
            if last is None and len(self._kev_last) >= TWIN_MAX:
                self._kev_last.clear()
                self._kev_holes.clear()
            self._kev_last[key] = seq

    def _twin_lost(self, env: Envelope) -> bool:
        """Whether the kernel's endpoint skipped this envelope's number between two it sent (its queue overflowed,
        or its mark says so): the twin was lost, not never sent.

        A copy numbered below the first the kernel's endpoint showed this subscriber may be a twin sent before
        the subscription reached that endpoint, but a forger may pick such numbers too: it is judged forged.
        """
        holes = self._kev_holes.get((env.source, env.topic))
        return holes is not None and any(lo <= env.seq <= hi for lo, hi in holes)

    def _expire(self, now: float) -> list[Envelope]:
        """Forgeries whose wait is over are dropped; authentic frames whose proxy copy never came are delivered."""
        out: list[Envelope] = []
        for frame, (deadline, env) in list(self._early.items()):
            if deadline <= now:
                if frame not in self._verdict and self._kev_last.get((env.source, env.topic), -1) < env.seq:
                    # the kernel's endpoint has not got this far yet: its mark will say whether it skipped it
                    self._verdict.add(frame)
                    self._early[frame] = (deadline + VERDICT_WAIT_S, env)
                    continue
                del self._early[frame]
                self._verdict.discard(frame)
                if self._twin_lost(env):  # never delivered either way; counted lost by its gap, not as forged
                    self.unverified += 1
                    self.rejects.reject(
                        FrameError(
                            "twin_lost",
                            f"{env.topic} from {env.source!r} #{env.seq}: the kernel's copy was lost, so it is "
                            "not delivered",
                        )
                    )
                else:
                    self._forgery(env.topic, env.source)
        for frame, deadline in list(self._twins.items()):
            if deadline <= now:
                del self._twins[frame]
                try:
                    _, env = wire.decode_topic_frame(frame)
                except FrameError as err:
                    self.rejects.reject(err)
                    continue
                self._deliver(env, out, True)
        return out

    def _next_deadline(self) -> float | None:
        times = [d for d in self._twins.values()] + [d for d, _ in self._early.values()]
        return min(times) if times else None

    def _drain(self) -> list[Envelope]:
        """Everything ready: the kernel's endpoint first (so its frames can vouch for their proxy copies)."""
        assert self._asock is not None
        late: list[Envelope] = []
        if self._kasock is not None:
            late = self.take_kernel_frames(self._kasock.drain_frames())
        batch: list[Envelope] = []
        recv, take = self.sock.recv, self._take
        try:  # recv until EAGAIN: cheaper than asking ZMQ_EVENTS before each frame
            while len(batch) < DRAIN_BUDGET:
                take(recv(_NOBLOCK), batch)
        except zmq.Again:
            pass
        if self._twins or self._early:
            late += self._expire(time.monotonic())
        return late + batch if late else batch  # the late ones were published first (held for their twins)

    def requeue(self, envs: list[Envelope]) -> None:
        """Put messages back to be read first, in order (a reader that waited for one topic keeps the rest)."""
        self._backlog.extendleft(reversed(envs))

    async def next(self) -> Envelope:
        """The next message, one at a time (what a batch held beyond it waits for the next call)."""
        if not self._backlog:
            self._backlog.extend(await self.batches())
        return self._backlog.popleft()

    async def batches(self) -> list[Envelope]:
        """Await the next non-empty batch of decoded messages (messages left by next() come first)."""
        if self._backlog:
            out = list(self._backlog)
            self._backlog.clear()
            return out
        if self._asock is None:
            self._asock = AsyncSocket(self.sock, readable=self._ready)
            if self.ksock is not None:
                self._kasock = AsyncSocket(self.ksock, readable=self._ready)
        while True:
            batch = self._drain()
            if batch:
                return batch
            self._ready.clear()
            if self._asock.has_input or (self._kasock is not None and self._kasock.has_input):
                continue
            deadline = self._next_deadline()
            if deadline is None:
                await self._ready.wait()
            else:
                # A timer wakes us for held kernel frames. Not wait_for + suppress(TimeoutError): on 3.10/3.11 a
                # caller's cancellation that lands as that timeout fires is turned into TimeoutError, swallowed
                # here, and the caller's own wait_for(batches(), ...) then waits for a cancel that never comes.
                loop = asyncio.get_running_loop()
                timer = loop.call_later(max(0.0, deadline - time.monotonic()) + 0.001, self._ready.set)
                try:
                    await self._ready.wait()
                finally:
                    timer.cancel()

    async def run(self, handler: Handler) -> None:
        """Forever: hand each message to ``handler``; a handler error is logged, not fatal."""
        while True:
            for env in await self.batches():
                try:
                    res = handler(env)
                    if res is not None:
                        await res
                except asyncio.CancelledError:
                    raise
                except wire.PayloadError as err:  # a batched payload that did not decode when read
                    self.rejects.reject(err)
                except Exception:
                    log.exception("bus.subscriber_handler_failed", topic=env.topic)
            await asyncio.sleep(0)

    def close(self) -> None:
        """Close without linger (a subscriber has nothing to flush)."""
        for asock, sock in ((self._asock, self.sock), (self._kasock, self.ksock)):
            if asock is not None:
                asock.close(0)
            elif sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    sock.close(linger=0)


def _peer(frame: zmq.Frame) -> str:
    """A frame's ``Peer-Address`` (``host:uid:gid:pid`` on ipc), or "" when libzmq has none."""
    try:
        return str(frame.get(PEER_ADDRESS))
    except (zmq.ZMQError, KeyError):
        return ""
