"""Asyncio integration for plain ZeroMQ sockets: await readiness once, then drain without blocking.

One ``await recv()`` per message caps a loop near 60k msg/s; awaiting once and draining every
ready message reaches several hundred thousand, so every receive loop here drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import zmq

POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
# Plain ints: ZeroMQ's IntFlag enums cost a Python-level __and__ on every test in the hot path.

FAIR_SHARE = 2048
"""Messages one socket may handle per loop iteration before yielding to other callbacks."""
LINGER_MS = 200
"""Bounded linger on close: queued messages get this long to leave, then are discarded."""


class AsyncSocket:
    """Wraps a zmq socket so coroutines can wait for it to become readable or writable."""

    def __init__(
        self,
        sock: zmq.Socket[bytes],
        loop: asyncio.AbstractEventLoop | None = None,
        readable: asyncio.Event | None = None,
    ):
        self.sock = sock
        self._loop = loop or asyncio.get_running_loop()
        self._fd = int(sock.getsockopt(zmq.FD))
        self._readable = readable or asyncio.Event()
        """Set when the socket may have messages; ``readable`` lets one waiter watch several sockets."""
        self._writable = asyncio.Event()
        self._closed = False
        self._handler: Callable[[list[Any]], None] | None = None
        self._multipart = False
        self._copy = True
        self._scheduled = False
        self._writers = 0
        """Coroutines waiting in wait_writable."""
        self._loop.add_reader(self._fd, self._on_fd)

    def on_messages(self, handler: Callable[[list[Any]], None], multipart: bool = False, copy: bool = True) -> None:
        """Call ``handler`` with every drained batch straight from the FD callback.

        This saves the loop iteration a waiting coroutine would cost on each hop, which is most of
        a command's round trip. ``handler`` must not block; it may start tasks.
        """
        self._handler = handler
        self._multipart = multipart
        self._copy = copy  # False: multipart batches hold zmq.Frame objects (for metadata such as User-Id)
        self._schedule()

    def _events(self) -> int:
        return int(self.sock.getsockopt(_EVENTS))

    def _on_fd(self) -> None:
        # Reading EVENTS (or receiving) re-arms ZeroMQ's edge-triggered FD, so the selector does not spin.
        self._scheduled = False
        if self._closed:
            return
        if self._handler is not None and not self._writers:
            # Nobody waits to send: receive at once. A wake-up almost always means a message, and a receive
            # re-arms the FD as an EVENTS read does; the read that would only report POLLOUT is skipped.
            self._handle()
            return
        try:
            events = self._events()
        except zmq.ZMQError:
            return
        if events & POLLOUT:
            self._writable.set()
        if not events & POLLIN:
            return
        if self._handler is None:
            self._readable.set()
            return
        self._handle()

    def _handle(self) -> None:
        """Hand what is ready to the handler, a fair share per loop iteration."""
        assert self._handler is not None
        handled = 0
        while handled < FAIR_SHARE:
            try:
                batch = self._receive(FAIR_SHARE)
            except zmq.ZMQError:  # closed or its context terminated under us
                return
            handled += len(batch)
            if batch:
                self._handler(batch)
            if self.closed:  # the handler may have closed us
                return
            if len(batch) < FAIR_SHARE:
                # The receive saw the socket empty (and re-armed the FD): what arrives from now on wakes the
                # FD again, and a send from the handler re-checks (_after_send). No EVENTS read needed here.
                return
        if self._events() & POLLIN:
            self._schedule()  # more is waiting: continue after other callbacks have had a turn

    def _receive(self, limit: int) -> list[Any]:
        """The messages ready now, until the socket is seen empty or ``limit`` (none: a spurious wake-up).

        A lone message (a command, a result) is followed by an EVENTS read rather than a receive
        that fails: pyzmq's EAGAIN exception costs more than the read. A burst drains until EAGAIN.
        """
        multipart, copy = self._multipart, self._copy
        try:
            first = self.sock.recv_multipart(_NOBLOCK, copy=copy) if multipart else self.sock.recv(_NOBLOCK)
        except zmq.Again:
            return []
        if limit <= 1 or not self._events() & POLLIN:
            return [first]
        rest = self.drain_multipart(limit - 1, copy) if multipart else self.drain(limit - 1)
        return [first, *rest]

    def pump(self) -> None:
        """Handle whatever is ready now, synchronously (before a decision that depends on unread messages)."""
        self._on_fd()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def _schedule(self) -> None:
        if not self._scheduled and not self._closed:
            self._scheduled = True
            self._loop.call_soon(self._on_fd)

    @property
    def has_input(self) -> bool:
        """Whether a message can be received now (reading this re-arms ZeroMQ's edge-triggered FD)."""
        return bool(self._events() & POLLIN)

    async def wait_readable(self) -> None:
        """Return once at least one message can be received without blocking."""
        while not self._events() & POLLIN:
            self._readable.clear()
            await self._readable.wait()

    async def wait_writable(self) -> None:
        """Return once a message can be sent without blocking."""
        self._writers += 1  # while anyone waits here, the FD callback reads EVENTS to see POLLOUT
        try:
            while not self._events() & POLLOUT:
                self._writable.clear()
                await self._writable.wait()
        finally:
            self._writers -= 1

    def drain(self, limit: int = 4096) -> list[bytes]:
        """Receive every ready single-frame message (up to ``limit``) without blocking."""
        # Receive until EAGAIN: one exception per drain costs less than a ZMQ_EVENTS read per message (1 µs).
        out: list[bytes] = []
        recv = self.sock.recv
        try:
            while len(out) < limit:
                out.append(recv(_NOBLOCK))
        except zmq.Again:
            pass
        return out

    def drain_frames(self, limit: int = 4096) -> list[zmq.Frame]:
        """Like drain(), as zmq.Frame objects that carry the message's metadata (``Peer-Address``)."""
        out: list[zmq.Frame] = []
        recv = self.sock.recv
        try:
            while len(out) < limit:
                out.append(recv(_NOBLOCK, copy=False))
        except zmq.Again:
            pass
        return out

    def drain_multipart(self, limit: int = 4096, copy: bool = True) -> list[list[Any]]:
        """Receive every ready multipart message (ROUTER envelopes) without blocking."""
        out: list[list[Any]] = []
        recv = self.sock.recv_multipart
        try:
            while len(out) < limit:
                out.append(recv(_NOBLOCK, copy=copy))
        except zmq.Again:
            pass
        return out

    def _after_send(self) -> None:
        # A send can consume the FD's edge for messages that arrived meanwhile; re-check so a
        # waiting reader is not left asleep with messages queued.
        if self._events() & POLLIN:
            if self._handler is None:
                self._readable.set()
            else:
                self._schedule()

    async def send(self, frame: bytes) -> None:
        """Send one frame, waiting (never dropping) while the peer is at its high-water mark."""
        while True:
            try:
                self.sock.send(frame, _NOBLOCK)
                break
            except zmq.Again:
                await self.wait_writable()
        self._after_send()

    async def send_multipart(self, frames: list[bytes]) -> None:
        """Send a multipart message, waiting while at the high-water mark."""
        while True:
            try:
                self.sock.send_multipart(frames, _NOBLOCK)
                break
            except zmq.Again:
                await self.wait_writable()
        self._after_send()

    def send_nowait(self, frame: bytes) -> None:
        """Send one frame now or raise zmq.ZMQError (EAGAIN at the HWM, or no connection with ZMQ_IMMEDIATE)."""
        try:
            self.sock.send(frame, _NOBLOCK)
        finally:
            self._after_send()

    def send_routed_nowait(self, route: bytes, frame: bytes) -> None:
        """Send ``[route, frame]`` on a ROUTER now, as two plain sends (send_multipart's generality costs more)."""
        try:
            self.sock.send(route, _NOBLOCK | _SNDMORE)
            self.sock.send(frame, _NOBLOCK)
        finally:
            self._after_send()

    def send_multipart_nowait(self, frames: list[bytes]) -> None:
        """Send now or raise zmq.ZMQError (EAGAIN at the HWM, EHOSTUNREACH for an unknown peer)."""
        try:
            self.sock.send_multipart(frames, _NOBLOCK)
        finally:
            self._after_send()

    def close(self, linger_ms: int = LINGER_MS) -> None:
        """Stop watching the FD and close with a bounded linger."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.remove_reader(self._fd)
        except (ValueError, OSError, RuntimeError):
            pass
        self.sock.close(linger=linger_ms)
