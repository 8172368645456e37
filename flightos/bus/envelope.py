"""The versioned bus envelope and its MessagePack codec (no ZeroMQ in here: sockets take a codec)."""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Sequence
from typing import Any

import msgspec

VERSION = 1
"""Envelope version on the wire; receivers reject any other."""
BATCH_VERSION = 2
"""First element of a batch frame's array: a receiver that predates batches rejects it as ``unknown_version``."""
BATCH_HEAD = 0x96
"""A batch frame's first byte after the separator (a 6-element MessagePack array); an envelope's is 0x99."""

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
    MARK = 7
    """A publisher has sent up to ``seq`` on ``topic``, which began at the payload (monotonic ns): see gaps.py."""


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """One bus message: a MessagePack array ``[v, kind, topic, source, seq, mono_ns, utc_ns, corr, payload]``.

    ``topic`` is the pub/sub topic or a command's destination; ``corr`` is a command id
    (its idempotency key) or the id a result answers. ``body`` holds the payload, or for a message
    unpacked from a batch its still-encoded bytes, which ``payload`` decodes on first access.
    """

    v: int
    kind: int
    topic: str
    source: str
    seq: int
    mono_ns: int
    utc_ns: int
    corr: str
    body: Any

    @property
    def payload(self) -> Any:
        """The payload, decoded now if it came in a batch and nobody read it before (raises PayloadError)."""
        body = self.body
        if type(body) is _Raw:
            try:
                body = _generic_decoder.decode(body)
            except _DECODE_ERRORS as exc:
                raise PayloadError(
                    "malformed_payload", f"{self.topic} #{self.seq} from {self.source!r}: {exc}"
                ) from None
            _force_setattr(self, "body", body)
        return body


class FrameError(ValueError):
    """A frame that is not a valid envelope: malformed, truncated or of an unknown version."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PayloadError(FrameError):
    """A batched message's payload that fails to decode when it is first read."""


class BatchHead(msgspec.Struct, array_like=True):
    """A batch frame's array: ``[2, kind, topic, source, seq, [[mono_ns, utc_ns, payload], …]]``.

    Every message has the batch's topic, source and kind; their sequence numbers run from ``seq``.
    No items is a sequence mark: the publisher has sent up to ``seq - 1`` on this topic.
    """

    v: int
    kind: int
    topic: str
    source: str
    seq: int
    items: list[tuple[int, int, msgspec.Raw]]


class _Peek(msgspec.Struct, array_like=True):
    """The fields a relay routes on, read without decoding any payload (envelope or batch alike)."""

    v: int
    kind: int
    topic: str
    source: str
    seq: int
    rest: msgspec.Raw


_Raw = msgspec.Raw
_force_setattr = msgspec.structs.force_setattr
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, TypeError, OverflowError, RecursionError)
"""Everything a decoder may raise on hostile bytes (invalid UTF-8 raises UnicodeDecodeError)."""

_mono_ns = time.monotonic_ns
_utc_ns = time.time_ns
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)
_generic_decoder = msgspec.msgpack.Decoder()
_batch_decoder = msgspec.msgpack.Decoder(BatchHead)
_peek_decoder = msgspec.msgpack.Decoder(_Peek)


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
    return Envelope(
        VERSION,
        kind.value if isinstance(kind, Kind) else kind,
        topic,
        source,
        seq,
        _mono_ns(),
        _utc_ns(),
        corr,
        payload,
    )


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


def encode_item(mono_ns: int, utc_ns: int, payload: Any) -> bytes:
    """One message of a batch, encoded when it is published (later changes to ``payload`` do not leak in)."""
    return _encoder.encode((mono_ns, utc_ns, payload))


def _array_head(n: int) -> bytes:
    """A MessagePack array header for ``n`` elements."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def batch_lead(prefix: bytes, kind: int, topic: str, source: str) -> bytes:
    """What every batch frame of one topic from one publisher starts with: ``prefix`` (topic and separator),
    then the array's head up to its ``seq`` (the same for every batch, so a publisher encodes it once)."""
    return b"".join((prefix, b"\x96", *(_encoder.encode(x) for x in (BATCH_VERSION, kind, topic, source))))


def batch_frame(lead: bytes, seq: int, items: Sequence[bytes | memoryview]) -> bytes:
    """A batch frame from its ``lead`` (batch_lead), its first sequence number and its items (encode_item)."""
    return b"".join((lead, _encoder.encode(seq), _array_head(len(items)), *items))


def encode_batch(
    prefix: bytes, kind: int, topic: str, source: str, seq: int, items: Sequence[bytes | memoryview]
) -> bytes:
    """A batch frame: ``prefix`` (topic and separator), then the batch array around ``items`` (from encode_item)."""
    return batch_frame(batch_lead(prefix, kind, topic, source), seq, items)


def batch_room(lead: bytes) -> int:
    """Bytes to reserve ahead of a batch's items for its head (see seal_batch): the lead, a seq, an array head."""
    return len(lead) + 9 + 5


def encode_item_into(buf: bytearray, mono_ns: int, utc_ns: int, payload: Any) -> None:
    """Encode one message of a batch onto the end of ``buf`` (as encode_item, without an intermediate copy)."""
    _encoder.encode_into((mono_ns, utc_ns, payload), buf, -1)


def seal_batch(buf: bytearray, room: int, lead: bytes, seq: int, n: int) -> int:
    """Write the head of the ``n`` items that follow ``buf[:room]`` so that it ends at ``room``; return where
    the frame starts (the frame is ``buf[start:]``: the items are not copied again)."""
    head = b"".join((lead, _encoder.encode(seq), _array_head(n)))
    start = room - len(head)
    buf[start:room] = head
    return start


def decode_batch_frame(frame: bytes, sep: int) -> BatchHead:
    """A batch frame whose separator is at ``sep``: its head and still-encoded payloads, or raise FrameError."""
    try:
        head = _batch_decoder.decode(memoryview(frame)[sep + 1 :])
    except _DECODE_ERRORS as exc:
        raise FrameError("malformed", f"not a valid batch ({exc})") from None
    if head.v != BATCH_VERSION:  # pragma: no cover - BATCH_HEAD and the struct's shape admit only v2 today
        raise FrameError("unknown_version", f"batch version {head.v}, expected {BATCH_VERSION}")
    if frame[:sep] != head.topic.encode():
        raise FrameError("malformed", f"frame topic {frame[:sep]!r} differs from batch {head.topic!r}")
    return head


def unpack(head: BatchHead) -> list[Envelope]:
    """The messages of a batch, payloads left encoded until read."""
    kind, topic, source, seq = head.kind, head.topic, head.source, head.seq
    return [
        Envelope(VERSION, kind, topic, source, n, mono, utc, "", raw)
        for n, (mono, utc, raw) in enumerate(head.items, seq)
    ]


def is_batch(frame: bytes, sep: int) -> bool:
    """Whether the pub/sub frame with its separator at ``sep`` is a batch (else a single envelope)."""
    return len(frame) > sep + 1 and frame[sep + 1] == BATCH_HEAD


def peek_topic_frame(frame: bytes) -> tuple[str, str]:
    """The topic and source of a pub/sub frame, envelope or batch, without decoding payloads (for relays)."""
    sep = frame.find(TOPIC_SEPARATOR)
    if sep <= 0:
        raise FrameError("malformed", "no topic separator in pub/sub frame")
    try:
        head = _peek_decoder.decode(memoryview(frame)[sep + 1 :])
    except _DECODE_ERRORS as exc:
        raise _diagnose(memoryview(frame)[sep + 1 :], exc) from None
    if head.v not in (VERSION, BATCH_VERSION):
        raise FrameError("unknown_version", f"envelope version {head.v}, expected {VERSION}")
    if frame[:sep] != head.topic.encode():
        raise FrameError("malformed", f"frame topic {frame[:sep]!r} differs from envelope {head.topic!r}")
    return head.topic, head.source


def peek_seq(frame: bytes) -> tuple[str, str, int, int] | None:
    """The topic, source, sequence number and kind of a single pub/sub frame; None if it does not decode."""
    sep = frame.find(TOPIC_SEPARATOR)
    if sep <= 0:
        return None
    try:
        head = _peek_decoder.decode(memoryview(frame)[sep + 1 :])
    except _DECODE_ERRORS:
        return None
    return head.topic, head.source, head.seq, head.kind


def new_id() -> str:
    """A fresh command/correlation id (128 random bits, hex)."""
    return os.urandom(16).hex()
