"""The bus envelope: MessagePack that independent decoders read, and rejection of anything else."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightos.bus import envelope as wire
from flightos.bus.envelope import FrameError, Kind

payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


@given(payloads)
def test_msgpack_package_decodes_every_envelope(payload: object) -> None:
    """An envelope is a plain MessagePack array that the msgpack package reads field by field."""
    env = wire.make(Kind.TELEMETRY, "tm.cam.status", "cam", payload, seq=7, corr="abc")
    raw = msgpack.unpackb(wire.encode(env), raw=False, strict_map_key=False)
    assert raw[:5] == [wire.VERSION, int(Kind.TELEMETRY), "tm.cam.status", "cam", 7]
    assert raw[7] == "abc"
    assert raw[8] == payload
    assert wire.decode(wire.encode(env)) == env


def test_frames_written_by_msgpack_are_accepted() -> None:
    """A ground tool that packs the array itself is understood."""
    frame = msgpack.packb([1, 3, "test", "ground", 1, 5, 6, "id-1", {"name": "ping", "args": {}}])
    env = wire.decode(frame)
    assert env.kind == Kind.COMMAND and env.topic == "test" and env.payload["name"] == "ping"


def test_unknown_version_is_named() -> None:
    """Version 2 is rejected as unknown_version, not as garbage."""
    frame = msgpack.packb([2, 1, "t", "s", 1, 1, 1, "", None])
    with pytest.raises(FrameError) as info:
        wire.decode(frame)
    assert info.value.reason == "unknown_version"


def test_topic_frame_roundtrip_and_mismatch() -> None:
    """The topic leads the frame and must match the envelope's topic."""
    env = wire.make(Kind.EVENT, "ev.cam", "cam", {"x": 1})
    frame = wire.encode_topic_frame(b"ev.cam", env)
    assert frame.startswith(b"ev.cam\x00")
    assert wire.decode_topic_frame(frame) == ("ev.cam", env)
    with pytest.raises(FrameError, match="differs"):
        wire.decode_topic_frame(wire.encode_topic_frame(b"ev.other", env))


@given(st.binary(max_size=200))
def test_garbage_raises_frame_error_only(data: bytes) -> None:
    """Any bytes either decode or raise FrameError — never another exception."""
    for fn in (wire.decode, wire.decode_topic_frame):
        try:
            fn(data)  # type: ignore[operator]
        except FrameError:
            pass
