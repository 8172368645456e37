"""The versioned bus envelope and its MessagePack codec (no ZeroMQ in here: sockets take a codec)."""

from __future__ import annotations

import enum
import os
import time
from typing import Any

import msgspec

VERSION = 1
"""Envelope version on the wire; receivers reject any other."""

TOPIC_SEPARATOR = b"\x00"
"""Separates the topic from the envelope in a single pub/sub frame, so ZeroMQ prefix filtering works."""


class Kind(enum.IntEnum):
    """What an envelope carries."""

    TELEMETRY = 1
    EVENT = 2
    COMMAND = 3
    RESULT = 4
    HEARTBEAT = 5
    CONTROL = 6


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """One bus message: a MessagePack array ``[v, kind, topic, source, seq, mono_ns, utc_ns, corr, payload]``.

    ``topic`` is the pub/sub topic or a command's destination; ``corr`` is a command id
    (its idempotency key) or the id a result answers.
    """

    v: int
    kind: int
    topic: str
    source: str
    seq: int
    mono_ns: int
    utc_ns: int
    corr: str
    payload: Any


class FrameError(ValueError):
    """A frame that is not a valid envelope: malformed, truncated or of an unknown version."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError)
"""Everything a decoder may raise on hostile bytes (invalid UTF-8 raises UnicodeDecodeError)."""

_mono_ns = time.monotonic_ns
_utc_ns = time.time_ns
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)
_generic_decoder = msgspec.msgpack.Decoder()


def make(
    kind: Kind | int,
    topic: str,
    source: str,
    payload: Any,
    *,
    seq: int = 0,
    corr: str = "",
) -> Envelope:
    """Build an envelope stamped with the monotonic and UTC clocks now."""
    return Envelope(VERSION, kind.value if isinstance(kind, Kind) else kind, topic, source, seq,
                    _mono_ns(), _utc_ns(), corr, payload)


def encode(env: Envelope) -> bytes:
    """Encode an envelope to MessagePack bytes."""
    return _encoder.encode(env)


def decode(data: bytes | memoryview) -> Envelope:
    """Decode MessagePack bytes to an envelope, or raise FrameError naming what is wrong."""
    try:
        env = _decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise _diagnose(data, exc) from None
    if env.v != VERSION:
        raise FrameError("unknown_version", f"envelope version {env.v}, expected {VERSION}")
    return env


def _diagnose(data: bytes | memoryview, exc: Exception) -> FrameError:
    """Tell an unknown version apart from a malformed frame, for the rejection counters."""
    try:
        raw = _generic_decoder.decode(data)
    except _DECODE_ERRORS:
        return FrameError("malformed", f"not a valid envelope ({exc})")
    if isinstance(raw, list) and raw and isinstance(raw[0], int) and raw[0] != VERSION:
        return FrameError("unknown_version", f"envelope version {raw[0]}, expected {VERSION}")
    return FrameError("malformed", str(exc))


def encode_topic_frame(topic: bytes, env: Envelope) -> bytes:
    """One pub/sub frame: topic, separator, envelope — the topic leads so prefix filters apply."""
    return topic + TOPIC_SEPARATOR + _encoder.encode(env)


def decode_topic_frame(frame: bytes) -> tuple[str, Envelope]:
    """Split and decode a pub/sub frame, or raise FrameError."""
    sep = frame.find(TOPIC_SEPARATOR)
    if sep <= 0:
        raise FrameError("malformed", "no topic separator in pub/sub frame")
    try:
        env = _decoder.decode(memoryview(frame)[sep + 1 :])
    except _DECODE_ERRORS as exc:
        raise _diagnose(memoryview(frame)[sep + 1 :], exc) from None
    if env.v != VERSION:
        raise FrameError("unknown_version", f"envelope version {env.v}, expected {VERSION}")
    topic = env.topic
    if len(topic) != sep:  # cheap guard; receivers route on the envelope's topic, not the prefix
        raise FrameError("malformed", f"frame topic {frame[:sep]!r} differs from envelope {topic!r}")
    return topic, env


def new_id() -> str:
    """A fresh command/correlation id (128 random bits, hex)."""
    return os.urandom(16).hex()
