"""Telemetry and events: publishers that number messages per topic, subscribers that count gaps."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import structlog
import zmq

from flightos.bus import envelope as wire
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.envelope import Envelope, FrameError, Kind

log = structlog.get_logger("flightos.bus")
_mono_ns = time.monotonic_ns
_utc_ns = time.time_ns

PUB_HWM = 10_000
KERNEL = "kernel"
KERNEL_TOPICS = ("ev.kernel", "tm.kernel.", "tm.hal.")
"""The kernel's topics: they come only from the kernel's own endpoint (``kev.sock``), never through the proxy."""
PEER_ADDRESS = "Peer-Address"


def kernel_topic(topic: str, source: str) -> bool:
    """Whether a publication claims to be the kernel's, by its source or its topic."""
    return source == KERNEL or topic == "ev.kernel" or topic.startswith(KERNEL_TOPICS[1:]) \
        or topic.startswith("ev.kernel.")


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
            log.warning("bus.frame_rejected", where=self.where, reason=err.reason,
                        detail=err.detail, count=n)
            if self.on_report is not None:
                self.on_report(self.where, err, n)

    @property
    def total(self) -> int:
        """All rejected frames."""
        return sum(self.counts.values())


class Publisher:
    """Publishes envelopes under dotted topics through the kernel proxy, numbering each topic."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, source: str, *,
                 bind: bool = False) -> None:
        self.source = source
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.sock.setsockopt(zmq.LINGER, LINGER_MS)
        if bind:  # the kernel's own endpoint: subscribers connect to it directly, not through the proxy
            self.sock.bind(endpoint)
        else:
            self.sock.connect(endpoint)
        self._seq: dict[str, int] = {}
        self._prefix: dict[str, bytes] = {}
        self._encode = msgspec.msgpack.Encoder().encode
        self._send = self.sock.send
        self.sent = 0

    def publish(self, topic: str, payload: object, kind: int = Kind.TELEMETRY.value) -> int:
        """Send one message now (never blocks; at the HWM ZeroMQ drops, which the seq reveals)."""
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        prefix = self._prefix.get(topic)
        if prefix is None:
            if "\x00" in topic or not topic.isascii():
                raise ValueError(f"topics are ASCII without NUL: {topic!r}")
            prefix = self._prefix[topic] = topic.encode() + wire.TOPIC_SEPARATOR
        # The envelope is built inline: this is the hottest path of the bus.
        env = Envelope(wire.VERSION, kind, topic, self.source, seq, _mono_ns(), _utc_ns(), "", payload)
        self._send(prefix + self._encode(env))
        self.sent += 1
        return seq

    def close(self) -> None:
        """Close with bounded linger."""
        self.sock.close(linger=LINGER_MS)


Handler = Callable[[Envelope], Awaitable[None] | None]


class Subscriber:
    """Receives topics by prefix, counts sequence gaps (dropped messages) and rejected frames.

    The kernel's topics (``KERNEL_TOPICS``, or any frame whose source is ``kernel``) are taken only
    from the kernel's own endpoint, checked to be bound by the kernel's pid; the same topics arriving
    through the shared proxy are forgeries and are dropped and counted (``forged``). Without a
    ``kernel`` channel the subscriber receives no kernel topics at all.
    """

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, where: str,
                 kernel: KernelChannel | None = None) -> None:
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.kernel = kernel
        self.ksock: zmq.Socket[bytes] | None = None
        if kernel is not None:
            self.ksock = ctx.socket(zmq.SUB)
            self.ksock.setsockopt(zmq.RCVHWM, 100_000)
            self.ksock.setsockopt(zmq.LINGER, 0)
            self.ksock.connect(kernel.endpoint)
        self._kpeer_ok: set[str] = set()
        self._ready = asyncio.Event()
        self._asock: AsyncSocket | None = None
        self._kasock: AsyncSocket | None = None
        self.forged = 0
        """Frames refused for claiming to be the kernel's: kernel topics through the proxy, or a stranger on kev."""
        self._last: dict[tuple[str, str], int] = {}
        self.received = 0
        self.dropped = 0
        self.rejects = RejectCounter(where)
        self._backlog: collections.deque[Envelope] = collections.deque()

    def subscribe(self, prefix: str) -> None:
        """Receive every topic starting with ``prefix`` (end it with '.' to match whole segments)."""
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        if self.ksock is not None:
            self.ksock.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving a prefix subscribed before."""
        self.sock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        if self.ksock is not None:
            self.ksock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())

    def _account(self, env: Envelope) -> None:
        key = (env.source, env.topic)
        last = self._last.get(key)
        if last is not None and env.seq > last + 1:
            self.dropped += env.seq - last - 1
        self._last[key] = env.seq  # a restarted publisher starts again at 1: no gap counted

    def decode_batch(self, frames: list[bytes]) -> list[Envelope]:
        """Decode a drained batch from the proxy, counting gaps, rejecting bad frames and forgeries (never raising)."""
        out: list[Envelope] = []
        for frame in frames:
            try:
                topic, env = wire.decode_topic_frame(frame)
            except FrameError as err:
                self.rejects.reject(err)
                continue
            if kernel_topic(topic, env.source):
                self.forged += 1
                self.rejects.reject(FrameError("not_from_kernel", f"{topic} from {env.source!r} through the "
                                               "shared proxy: the kernel publishes only on its own endpoint"))
                continue
            self._account(env)
            out.append(env)
        self.received += len(out)
        return out

    def decode_kernel_batch(self, frames: list[zmq.Frame]) -> list[Envelope]:
        """Decode frames from the kernel's endpoint, refusing any not sent by the kernel's process."""
        assert self.kernel is not None
        out: list[Envelope] = []
        for frame in frames:
            peer = _peer(frame)
            if peer not in self._kpeer_ok:
                if self.kernel.pid and not peer.endswith(f":{self.kernel.pid}"):
                    self.forged += 1
                    self.rejects.reject(FrameError(
                        "not_from_kernel",
                        f"{self.kernel.endpoint} is bound by {peer or 'an unknown peer'}, not the kernel "
                        f"(pid {self.kernel.pid})"))
                    continue
                self._kpeer_ok.add(peer)
            try:
                _, env = wire.decode_topic_frame(frame.bytes)
            except FrameError as err:
                self.rejects.reject(err)
                continue
            self._account(env)
            out.append(env)
        self.received += len(out)
        return out

    def _drain(self) -> list[Envelope]:
        """Everything ready on both sockets, kernel messages merged in by send time (each source in its order)."""
        assert self._asock is not None
        batch = self.decode_batch(self._asock.drain())
        if self._kasock is None:
            return batch
        kbatch = self.decode_kernel_batch(self._kasock.drain_frames())
        if not kbatch:
            return batch
        if not batch:
            return kbatch
        return list(heapq.merge(batch, kbatch, key=_sent_at))

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
            await self._ready.wait()

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


def _sent_at(env: Envelope) -> int:
    return env.mono_ns


def _peer(frame: zmq.Frame) -> str:
    """A frame's ``Peer-Address`` (``host:uid:gid:pid`` on ipc), or "" when libzmq has none."""
    try:
        return str(frame.get(PEER_ADDRESS))
    except (zmq.ZMQError, KeyError):
        return ""
