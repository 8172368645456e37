"""The ground link's transports: one packet per UDP datagram, or a TCP byte stream split into packets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from spacepackets.ccsds import SpacePacketHeader

Address = tuple[str, int]
OnPacket = Callable[[bytes, Address, "Link"], None]
MAX_PACKET = 65542  # CCSDS: 6-byte header + up to 65536 bytes of data
RCVBUF = 4 << 20


def parse_endpoint(text: str, what: str) -> Address:
    """``host:port`` -> (host, port), or ValueError naming the option."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{what}: expected host:port, got {text!r}")
    return host, int(port)


class Link:
    """A transport that can send a packet to an address."""

    name = "link"

    def send(self, packet: bytes, addr: Address) -> bool:
        """Send one packet; False if the peer is gone."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening."""


class UdpLink(asyncio.DatagramProtocol, Link):
    """One space packet per datagram; replies go back to the datagram's source."""

    name = "udp"

    def __init__(self, on_packet: OnPacket) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None
        self.bound: Address | None = None

    @classmethod
    async def open(cls, bind: Address, on_packet: OnPacket) -> UdpLink:
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
        self.transport.sendto(packet, addr)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpLink(Link):
    """A TCP server; each connection is a byte stream of space packets, framed by their length field."""

    name = "tcp"

    def __init__(self, on_packet: OnPacket, on_garbage: Callable[[str], None]) -> None:
        self.on_packet = on_packet
        self.on_garbage = on_garbage
        self.server: asyncio.AbstractServer | None = None
        self.writers: dict[Address, asyncio.StreamWriter] = {}
        self.bound: Address | None = None

    @classmethod
    async def open(cls, bind: Address, on_packet: OnPacket, on_garbage: Callable[[str], None]) -> TcpLink:
        """Listen and serve connections."""
        link = cls(on_packet, on_garbage)
        link.server = await asyncio.start_server(link._serve, bind[0], bind[1])
        link.bound = link.server.sockets[0].getsockname()[:2]
        return link

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr: Address = (str(peer[0]), int(peer[1]))
        self.writers[addr] = writer
        try:
            while True:
                header = await reader.readexactly(6)
                try:
                    total = SpacePacketHeader.unpack(header).packet_len
                except Exception as exc:
                    self.on_garbage(f"tcp {addr}: unreadable header ({exc}); closing the stream")
                    return
                body = await reader.readexactly(total - 6)
                self.on_packet(header + body, addr, self)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.pop(addr, None)
            with contextlib.suppress(Exception):
                writer.close()

    def send(self, packet: bytes, addr: Address) -> bool:
        w = self.writers.get(addr)
        if w is None or w.is_closing():
            return False
        w.write(packet)
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in list(self.writers.values()):
            with contextlib.suppress(Exception):
                w.close()
