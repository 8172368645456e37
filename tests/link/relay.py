"""A TCP relay that can be cut like a radio link: connections stay open, but no byte crosses until it heals.

``Relay(upstream_port)`` listens on a free loopback port and forwards every connection to
``127.0.0.1:upstream_port``. ``cut()`` stops forwarding in both directions at once: bytes already
read wait in the relay, the rest wait in the kernels' socket buffers, and no side sees a close or a
reset (only heartbeats can tell the link is gone). A connection accepted while cut is held: the
relay connects it upstream only when the link heals. ``heal()`` lets everything flow again, in order.
``cut(up=False)`` or ``cut(down=False)`` cuts one direction only (a link that fades one way first).
"""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 64 * 1024


class Relay:
    """One client-to-listener hop of a link, with a switch per direction to cut it."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        """Connections accepted so far (a reconnect after a cut adds one)."""
        self.held_bytes = 0
        """Bytes that waited in the relay because they arrived while their direction was cut."""
        self._up = asyncio.Event()  # client -> listener flows
        self._down = asyncio.Event()  # listener -> client flows
        self._up.set()
        self._down.set()
        self._closing = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        """The ZeroMQ endpoint a peer connects to instead of the real listener."""
        return f"tcp://{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        """True while either direction is cut."""
        return not (self._up.is_set() and self._down.is_set())

    async def start(self) -> Relay:
        """Listen on a free port (``self.port``)."""
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self, *, up: bool = True, down: bool = True) -> None:
        """Stop forwarding bytes client->listener (``up``) and/or back (``down``); connections stay open."""
        if up:
            self._up.clear()
        if down:
            self._down.clear()

    def heal(self) -> None:
        """Forward again both ways: what waited goes first, held connections are connected upstream."""
        self._up.set()
        self._down.set()

    async def close(self) -> None:
        """Stop listening and drop every connection (held ones are never connected upstream)."""
        self._closing = True
        self.heal()
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)
            me.add_done_callback(self._tasks.discard)
        self._writers.add(writer)
        try:
            while not (self._up.is_set() and self._down.is_set()):  # accepted while cut: held until healed
                await self._up.wait()
                await self._down.wait()
            if self._closing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pump(reader, up_writer, self._up), self._pump(up_reader, writer, self._down))
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        try:
            while True:
                await flowing.wait()
                data = await src.read(CHUNK)
                if not data:
                    break
                if not flowing.is_set():  # read just as this direction was cut: it waits for the heal
                    self.held_bytes += len(data)
                    await flowing.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            dst.close()  # one side reset: so does the other
            return
        # One side closed: half-close toward the other, which closes in turn and ends the other pump.
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()
