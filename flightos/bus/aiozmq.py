"""Asyncio integration for plain ZeroMQ sockets: await readiness once, then drain without blocking.

One ``await recv()`` per message caps a loop near 60k msg/s; awaiting once and draining every
ready message reaches several hundred thousand, so every receive loop here drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import zmq

LINGER_MS = 200
"""Bounded linger on close: queued messages get this long to leave, then are discarded."""


class AsyncSocket:
    """Wraps a zmq socket so coroutines can wait for it to become readable or writable."""

    def __init__(self, sock: zmq.Socket[bytes], loop: asyncio.AbstractEventLoop | None = None):
        self.sock = sock
        self._loop = loop or asyncio.get_running_loop()
        self._fd = int(sock.getsockopt(zmq.FD))
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._closed = False
        self._loop.add_reader(self._fd, self._on_fd)

    def _events(self) -> int:
        return int(self.sock.getsockopt(zmq.EVENTS))

    def _on_fd(self) -> None:
        # Reading EVENTS re-arms ZeroMQ's edge-triggered FD, so the selector does not spin.
        try:
            events = self._events()
        except zmq.ZMQError:
            return
        if events & zmq.POLLIN:
            self._readable.set()
        if events & zmq.POLLOUT:
            self._writable.set()

    async def wait_readable(self) -> None:
        """Return once at least one message can be received without blocking."""
        while not self._events() & zmq.POLLIN:
            self._readable.clear()
            await self._readable.wait()

    async def wait_writable(self) -> None:
        """Return once a message can be sent without blocking."""
        while not self._events() & zmq.POLLOUT:
            self._writable.clear()
            await self._writable.wait()

    def drain(self, limit: int = 4096) -> list[bytes]:
        """Receive every ready single-frame message (up to ``limit``) without blocking."""
        out: list[bytes] = []
        recv = self.sock.recv
        try:
            while len(out) < limit:
                out.append(recv(zmq.NOBLOCK))
        except zmq.Again:
            pass
        return out

    def drain_multipart(self, limit: int = 4096) -> list[list[bytes]]:
        """Receive every ready multipart message (ROUTER envelopes) without blocking."""
        out: list[list[bytes]] = []
        recv = self.sock.recv_multipart
        try:
            while len(out) < limit:
                out.append(recv(zmq.NOBLOCK))
        except zmq.Again:
            pass
        return out

    def _after_send(self) -> None:
        # A send can consume the FD's edge for messages that arrived meanwhile; re-check so a
        # waiting reader is not left asleep with messages queued.
        if self._events() & zmq.POLLIN:
            self._readable.set()

    async def send(self, frame: bytes) -> None:
        """Send one frame, waiting (never dropping) while the peer is at its high-water mark."""
        while True:
            try:
                self.sock.send(frame, zmq.NOBLOCK)
                break
            except zmq.Again:
                await self.wait_writable()
        self._after_send()

    async def send_multipart(self, frames: list[bytes]) -> None:
        """Send a multipart message, waiting while at the high-water mark."""
        while True:
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK)
                break
            except zmq.Again:
                await self.wait_writable()
        self._after_send()

    def send_multipart_nowait(self, frames: list[bytes]) -> None:
        """Send now or raise zmq.ZMQError (EAGAIN at the HWM, EHOSTUNREACH for an unknown peer)."""
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
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


async def receive_loop(
    sock: AsyncSocket,
    handle: Callable[[list[bytes]], None],
    multipart: bool = False,
) -> None:
    """Forever: await readiness once, drain every ready message, hand the batch to ``handle``."""
    while True:
        await sock.wait_readable()
        batch = sock.drain_multipart() if multipart else sock.drain()
        if batch:
            handle(batch)  # type: ignore[arg-type]
        # Yield so a flood on one socket cannot starve the rest of the loop.
        await asyncio.sleep(0)
