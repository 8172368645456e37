"""Telemetry and events: publishers that number messages per topic, subscribers that count gaps."""

from __future__ import annotations

import asyncio
import collections
import contextlib
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
"""The kernel's topics: delivered only when the kernel's own endpoint (``kev.sock``) vouches for them."""
VOUCHED_PREFIXES = ("ev.", "dl.")
"""Events and downlink products of services: the kernel checks who sent each one (its pid, its namespace,
its ``[acl]``) and vouches for it on ``kev.sock``, so no service can raise events or products as another."""
PEER_ADDRESS = "Peer-Address"
TWIN_WAIT_S = 0.5
"""How long a kernel frame waits for its other copy (proxy or kernel endpoint) before it is judged alone."""
TWIN_MAX = 10_000
"""Kernel frames held at once per subscriber; past it a proxy copy without its twin is dropped at once."""


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
                 mirror: str | None = None) -> None:
        self.source = source
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.sock.setsockopt(zmq.LINGER, LINGER_MS)
        self.sock.connect(endpoint)
        self.mirror: zmq.Socket[bytes] | None = None
        if mirror is not None:  # the kernel: every frame also on its own endpoint, which only it binds
            self.mirror = ctx.socket(zmq.PUB)
            self.mirror.setsockopt(zmq.SNDHWM, PUB_HWM)
            self.mirror.setsockopt(zmq.LINGER, LINGER_MS)
            self.mirror.bind(mirror)
        self._seq: dict[str, int] = {}
        self._prefix: dict[str, bytes] = {}
        self._encode = msgspec.msgpack.Encoder().encode
        self._send = self.sock.send if self.mirror is None else self._send_both
        self.sent = 0
        self.vouch: Callable[[bytes], None] | None = None
        """A service's host: also hands each event or product frame to the kernel, which vouches for it."""

    def _send_both(self, frame: bytes) -> None:
        """The mirror first: a subscriber then usually holds the authentic copy when the proxy's arrives."""
        assert self.mirror is not None
        self.mirror.send(frame)
        self.sock.send(frame)

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
        frame = prefix + self._encode(env)
        self._send(frame)
        if self.vouch is not None and topic.startswith(VOUCHED_PREFIXES):
            self.vouch(frame)
        self.sent += 1
        return seq

    def mirror_frame(self, frame: bytes) -> None:
        """The kernel vouches for a frame someone else published (a checked service event, an imported one)."""
        if self.mirror is not None:
            self.mirror.send(frame)

    def close(self) -> None:
        """Close with bounded linger."""
        self.sock.close(linger=LINGER_MS)
        if self.mirror is not None:
            self.mirror.close(linger=LINGER_MS)


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
        self._twins: dict[bytes, float] = {}
        """Authentic kernel frames (from kev.sock) waiting for their proxy copy, with a deadline."""
        self._early: dict[bytes, tuple[float, Envelope]] = {}
        """Proxy copies of kernel topics still without an authentic twin, with a deadline."""
        self._ready = asyncio.Event()
        self._asock: AsyncSocket | None = None
        self._kasock: AsyncSocket | None = None
        self._last: dict[tuple[str, str], int] = {}
        self.received = 0
        self.dropped = 0
        self.forged = 0
        """Kernel topics refused: no authentic twin on the kernel's endpoint, or a stranger bound there."""
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

    def _forgery(self, topic: str, source: str) -> None:
        self.forged += 1
        self.rejects.reject(FrameError("not_from_kernel", f"{topic} from {source!r} through the shared proxy, "
                                       "never sent by the kernel"))

    def decode_batch(self, frames: list[bytes]) -> list[Envelope]:
        """Decode a drained batch from the proxy, counting gaps, rejecting bad frames and forgeries (never raising)."""
        out: list[Envelope] = []
        for frame in frames:
            try:
                topic, env = wire.decode_topic_frame(frame)
            except FrameError as err:
                self.rejects.reject(err)
                continue
            if kernel_topic(topic, env.source) and self._twins.pop(frame, None) is None:
                # no authentic copy (yet): hold it (never stalling the rest), or drop it without a kernel channel
                if self.kernel is not None:
                    if len(self._early) < TWIN_MAX:
                        self._early[frame] = (time.monotonic() + TWIN_WAIT_S, env)
                    else:
                        self._forgery(topic, env.source)
                continue
            self._account(env)
            out.append(env)
        self.received += len(out)
        return out

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
                    self.rejects.reject(FrameError(
                        "not_from_kernel",
                        f"{self.kernel.endpoint} is bound by {peer or 'an unknown peer'}, not the kernel "
                        f"(pid {self.kernel.pid})"))
                    continue
                self._kpeer_ok.add(peer)
            data = frame.bytes
            early = self._early.pop(data, None)
            if early is not None:
                self._account(early[1])
                out.append(early[1])
            elif len(self._twins) < TWIN_MAX:
                self._twins[data] = deadline
        self.received += len(out)
        return out

    def _expire(self, now: float) -> list[Envelope]:
        """Forgeries whose wait is over are dropped; authentic frames whose proxy copy never came are delivered."""
        out: list[Envelope] = []
        for frame, (deadline, env) in list(self._early.items()):
            if deadline <= now:
                del self._early[frame]
                self._forgery(env.topic, env.source)
        for frame, deadline in list(self._twins.items()):
            if deadline <= now:
                del self._twins[frame]
                try:
                    _, env = wire.decode_topic_frame(frame)
                except FrameError as err:
                    self.rejects.reject(err)
                    continue
                self._account(env)
                out.append(env)
        self.received += len(out)
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
        batch = self.decode_batch(self._asock.drain())
        if self._twins or self._early:
            late += self._expire(time.monotonic())
        return batch + late if late else batch

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
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - time.monotonic()) + 0.001)

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


def _peer(frame: zmq.Frame) -> str:
    """A frame's ``Peer-Address`` (``host:uid:gid:pid`` on ipc), or "" when libzmq has none."""
    try:
        return str(frame.get(PEER_ADDRESS))
    except (zmq.ZMQError, KeyError):
        return ""
