"""The radio report thermwatch sends: a fixed 10-byte frame with a CRC, so bit errors are caught."""

from __future__ import annotations

import binascii
import struct

SYNC = b"TW"
FRAME = struct.Struct(">2sHhB")
"""sync, sequence number, temperature in centi-degrees (-32768: no reading), heater level."""
SIZE = FRAME.size + 2
NO_READING = -32768


def encode(seq: int, temp_c: float | None, heater: int) -> bytes:
    """One report, CRC-16/CCITT over everything before it."""
    centi = NO_READING if temp_c is None else max(-32767, min(32767, round(temp_c * 100)))
    body = FRAME.pack(SYNC, seq & 0xFFFF, centi, heater)
    return body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")


def intact(frame: bytes) -> bool:
    """True when a frame's CRC matches its content."""
    return len(frame) == SIZE and binascii.crc_hqx(frame[:-2], 0xFFFF).to_bytes(2, "big") == frame[-2:]


def decode(frame: bytes) -> tuple[int, float | None, int]:
    """(sequence, temperature or None, heater) of an intact frame."""
    _, seq, centi, heater = FRAME.unpack(frame[:-2])
    return seq, None if centi == NO_READING else centi / 100, heater
