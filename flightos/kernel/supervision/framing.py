"""Length-prefixed MessagePack frames on a stream socket (kernel <-> fork server)."""

from __future__ import annotations

import struct
from typing import Any

import msgspec

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20


def pack(msg: dict[str, Any]) -> bytes:
    """One frame: 4-byte big-endian length, then MessagePack."""
    body = msgspec.msgpack.encode(msg)
    return HEADER.pack(len(body)) + body


class Unpacker:
    """Accumulates stream bytes and yields complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return every complete message (raise ValueError on a corrupt stream)."""
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self._buf)
            if n > MAX_FRAME:
                raise ValueError(f"frame of {n} bytes exceeds {MAX_FRAME}")
            if len(self._buf) < HEADER.size + n:
                break
            body = bytes(self._buf[HEADER.size : HEADER.size + n])
            del self._buf[: HEADER.size + n]
            msg = msgspec.msgpack.decode(body)
            if not isinstance(msg, dict):
                raise ValueError("frame is not a map")
            out.append(msg)
        return out
