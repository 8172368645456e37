"""What crosses a link: a one-byte tag, then a body (a bus frame, or a MessagePack map for link control).

Commands, results and telemetry cross as the very bytes the bus carries, so nothing is re-encoded
on the way; hellos and store replicas are small MessagePack maps, validated on arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

VERSION = 1
HELLO = b"H"
"""Who I am, what I host, which topics my services want; sent every heartbeat (and once on a graceful stop)."""
COMMAND = b"C"
"""A bus COMMAND frame whose destination lives on the receiving board."""
RESULT = b"R"
"""A bus RESULT frame, on the connection its command came in on."""
TELEMETRY = b"T"
"""A bus topic frame a subscriber on the receiving board wants."""
REPLICA = b"S"
"""A snapshot of a failover service's store."""

TAGS = {HELLO, COMMAND, RESULT, TELEMETRY, REPLICA}


class LinkProtocolError(ValueError):
    """A link message that does not parse; the message names what is wrong."""


class Hosted(msgspec.Struct, forbid_unknown_fields=False):
    """One service a board owns, as its hello advertises it."""

    state: str
    home: str
    failover: bool
    config: dict[str, Any] | None = None


class Hello(msgspec.Struct, forbid_unknown_fields=False):
    """A kernel's heartbeat to a peer, carrying its view of itself."""

    v: int
    board: str
    epoch: int
    seq: int
    services: dict[str, Hosted] = msgspec.field(default_factory=dict)
    interest: list[str] = msgspec.field(default_factory=list)
    bye: bool = False


class Replica(msgspec.Struct):
    """A consistent copy of one service's store, from the board that runs it."""

    v: int
    board: str
    service: str
    epoch: int
    version: int
    data: bytes


M = TypeVar("M", Hello, Replica)
_hello_dec = msgspec.msgpack.Decoder(Hello)
_replica_dec = msgspec.msgpack.Decoder(Replica)
_enc = msgspec.msgpack.Encoder()


def encode(msg: Hello | Replica) -> bytes:
    """MessagePack bytes of a hello or a replica."""
    return _enc.encode(msg)


def decode_hello(data: bytes) -> Hello:
    """A hello, or LinkProtocolError naming the problem."""
    return _decode(_hello_dec, data, "hello")


def decode_replica(data: bytes) -> Replica:
    """A replica, or LinkProtocolError naming the problem."""
    return _decode(_replica_dec, data, "replica")


def _decode(decoder: msgspec.msgpack.Decoder[M], data: bytes, what: str) -> M:
    try:
        msg = decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise LinkProtocolError(f"malformed {what}: {exc}") from None
    if msg.v != VERSION:
        raise LinkProtocolError(f"{what} of link protocol version {msg.v}; this kernel speaks {VERSION}")
    return msg


@dataclass
class PeerView:
    """What this kernel knows of one peer: whether it is up, and its last hello."""

    board: str
    endpoint: str
    up: bool = False
    last_hello: float = 0.0
    down_since: float | None = None
    epoch: int = 0
    hello: Hello | None = None
    hellos: int = 0
    ever_up: bool = False
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "received": 0, "send_failed": 0})

    def hosts(self, service: str) -> bool:
        """True when the peer's last hello says it owns ``service``."""
        return self.up and self.hello is not None and service in self.hello.services

    def wants(self, topic: str) -> bool:
        """True when a subscriber on the peer wants ``topic``."""
        return self.up and self.hello is not None and any(topic.startswith(p) for p in self.hello.interest)
