"""The ground link's transports: one packet per UDP datagram, or a TCP byte stream split into packets.

Both tell the truth about sending: ``send`` is False when the packet was not handed to the socket
(closed, or its bounded write buffer is full). TCP connections are capped, closed when idle, and
closed when their peer stops reading, so no peer can hold file descriptors or memory forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spacepackets.ccsds import SpacePacketHeader

try:
    import fcntl
    import termios
except ImportError:  # not POSIX: the kernel's queue is not counted
    fcntl = termios = None  # type: ignore[assignment]

Address = tuple[str, int]
OnPacket = Callable[[bytes, Address, "Transport"], None]
OnNotice = Callable[[str, Address], None]
"""A link's report of something it did to a peer: (counter name, peer), e.g. ("tcp_refused", addr)."""
MAX_PACKET = 65542  # CCSDS: 6-byte header + up to 65536 bytes of data
RCVBUF = 4 << 20
UDP_BUFFER_MAX = 1 << 20
"""Bytes a UDP socket may hold queued in user space before ``send`` says False (the kernel's buffer is full)."""


def parse_endpoint(text: str, what: str) -> Address:
    """``host:port`` -> (host, port), or ValueError naming the option."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{what}: expected host:port with a port in 0..65535, got {text!r}")
    return host.strip("[]"), int(port)


class Transport:
    """A ground transport that can send a packet to an address (not ``flightos.link``, links between boards)."""

    name = "link"
    bound: Address | None = None

    def send(self, packet: bytes, addr: Address) -> bool:
        """Send one packet; False if it was not handed to the socket (peer gone, buffer full)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening."""

    def status(self) -> dict[str, Any]:
        """What ``link_status`` shows of this link."""
        host, port = self.bound or ("", 0)
        return {"kind": self.name, "host": host, "port": port}


class UdpTransport(asyncio.DatagramProtocol, Transport):
    """One space packet per datagram; replies go back to the datagram's source."""

    name = "udp"

    def __init__(self, on_packet: OnPacket) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None
        self.bound: Address | None = None

    @classmethod
    async def open(cls, bind: Address, on_packet: OnPacket) -> UdpTransport:
        """Bind and start receiving."""
        link = cls(on_packet)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: link, local_addr=bind)
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):  # absorb bursts; the kernel caps it at net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        link.transport = transport
        link.bound = transport.get_extra_info("sockname")[:2]
        return link

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.on_packet(bytes(data), (str(addr[0]), int(addr[1])), self)

    def send(self, packet: bytes, addr: Address) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        queued: int = getattr(self.transport, "get_write_buffer_size", lambda: 0)()  # not in every typeshed
        if queued + len(packet) > UDP_BUFFER_MAX:
            return False  # the kernel has not taken what is queued already: do not pretend
        self.transport.sendto(packet, addr)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True)
class TcpLimits:
    """What TCP peers may hold: connections, silence, the kernel's send buffer, and time with it full."""

    max_connections: int = 8
    idle_s: float = 300.0
    buffer_bytes: int = 65536
    stall_s: float = 10.0


def kernel_unsent(sock: Any) -> int:
    """Bytes in a TCP socket's kernel send queue, not yet acknowledged by the peer (Linux; 0 where unknown)."""
    request = getattr(termios, "TIOCOUTQ", None)
    if request is None or sock is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


@dataclass
class _Connection:
    """One accepted stream and what the link watches about it."""

    writer: asyncio.StreamWriter
    stalled_since: float | None = None
    """When a send was last refused while the peer made no progress; None while it keeps up."""
    written: int = 0
    delivered: int = 0

    def buffered(self) -> int:
        """Bytes asyncio holds because the socket did not take them."""
        return self.writer.transport.get_write_buffer_size()

    def unsent(self) -> int:
        """Bytes the peer has not acknowledged: asyncio's buffer plus the kernel's send queue."""
        return self.buffered() + kernel_unsent(self.writer.get_extra_info("socket"))

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()  # drops what is buffered: it was never counted as sent


class TcpTransport(Transport):
    """A TCP server; each connection is a byte stream of space packets, framed by their length field."""

    name = "tcp"

    def __init__(
        self,
        on_packet: OnPacket,
        on_garbage: Callable[[str, Address], None],
        limits: TcpLimits | None = None,
        on_notice: OnNotice | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_packet = on_packet
        self.on_garbage = on_garbage
        self.limits = limits or TcpLimits()
        self.on_notice: OnNotice = on_notice or (lambda what, addr: None)
        self.clock = clock
        self.server: asyncio.AbstractServer | None = None
        self.connections: dict[Address, _Connection] = {}
        self.bound: Address | None = None
        self.sent_packets = 0
        """Packets the sockets took whole (what ``send`` returned True for)."""
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        bind: Address,
        on_packet: OnPacket,
        on_garbage: Callable[[str, Address], None],
        limits: TcpLimits | None = None,
        on_notice: OnNotice | None = None,
    ) -> TcpTransport:
        """Listen and serve connections."""
        link = cls(on_packet, on_garbage, limits, on_notice)
        link.server = await asyncio.start_server(link._serve, bind[0], bind[1])
        link.bound = link.server.sockets[0].getsockname()[:2]
        link._sweeper = asyncio.get_running_loop().create_task(link._sweep_forever())
        return link

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr: Address = (str(peer[0]), int(peer[1]))
        conn = _Connection(writer)
        if len(self.connections) >= self.limits.max_connections:
            self.on_notice("tcp_refused", addr)  # accepted only to be closed at once: the fd is freed now
            conn.abort()
            return
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):  # bound what the kernel holds for a peer that stops reading
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.buffer_bytes)
        self.connections[addr] = conn
        idle = self.limits.idle_s
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(6), idle)
                try:
                    total = SpacePacketHeader.unpack(header).packet_len
                except Exception as exc:
                    self.on_garbage(f"tcp: unreadable packet header ({type(exc).__name__}); stream closed", addr)
                    return
                body = await asyncio.wait_for(reader.readexactly(total - 6), idle)
                self.on_packet(header + body, addr, self)
        except asyncio.TimeoutError:
            self.on_notice("tcp_idle_closed", addr)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.connections.get(addr) is conn:
                del self.connections[addr]
            if conn.stalled_since is not None:
                conn.abort()
            else:
                writer.close()

    def send(self, packet: bytes, addr: Address) -> bool:
        """True only if the socket took the whole packet. While it has not taken an earlier one, nothing more
        is written; a partly taken packet is finished if the peer reads, but is not counted as sent."""
        conn = self.connections.get(addr)
        if conn is None or conn.writer.is_closing():
            return False
        if conn.buffered():
            conn.stalled_since = conn.stalled_since or self.clock()
            self.on_notice("tcp_send_refused", addr)
            self._check_stall(addr, conn)
            return False
        conn.writer.write(packet)  # asyncio hands it to the socket now; what the socket refuses stays buffered
        conn.written += len(packet)
        if conn.buffered():
            conn.stalled_since = conn.stalled_since or self.clock()
            self.on_notice("tcp_send_partial", addr)  # the rest goes if the peer reads; counted as not sent
            return False
        self.sent_packets += 1
        return True

    def _check_stall(self, addr: Address, conn: _Connection) -> None:
        """Close a connection whose peer, since a send was refused, has taken nothing for ``stall_s``."""
        if conn.stalled_since is None:
            return
        unsent = conn.unsent()
        if unsent == 0:
            conn.stalled_since = None  # everything arrived: the peer reads again
            return
        delivered = conn.written - unsent
        if delivered > conn.delivered:  # progress: slow is not stalled
            conn.delivered, conn.stalled_since = delivered, self.clock()
            return
        if self.clock() - conn.stalled_since >= self.limits.stall_s:
            self.connections.pop(addr, None)
            self.on_notice("tcp_stalled_closed", addr)
            conn.abort()

    async def _sweep_forever(self) -> None:
        period = max(0.05, min(1.0, self.limits.stall_s / 4))
        while True:
            await asyncio.sleep(period)
            for addr, conn in list(self.connections.items()):
                self._check_stall(addr, conn)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "connections": len(self.connections), "sent": self.sent_packets}

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                conn.writer.close()
