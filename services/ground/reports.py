"""Telemetry the ground service builds: ST[05] events, ST[03] housekeeping, ST[20] and ST[08] values."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from flightos.ground import pus
from flightos.ground.mdb import HkStructure

SEVERITY_SUBTYPE = {1: 1, 2: 2, 3: 3, 4: 4}
"""SDK severity (INFO, LOW, MEDIUM, HIGH) -> ST[05] subtype (informative, low, medium, high)."""

PRIORITY = {("5", 4): 7, ("1", "fail"): 6, ("5", 3): 5, ("1", "ok"): 4, ("5", 2): 3, ("5", 1): 2, ("3", 25): 1}


def priority(service: int, subtype: int) -> int:
    """Store-and-forward priority of a report: alarms first, housekeeping last."""
    if service == 1:
        return PRIORITY[("1", "fail" if subtype % 2 == 0 else "ok")]
    return PRIORITY.get((str(service), subtype), 3)


def event_data(event_id: int, source: str, message: str, data: Any) -> bytes:
    """ST[05] report data: event id (u16), source (str), message (str), details (MessagePack)."""
    return (
        pus.pack_u16(event_id & 0xFFFF)
        + pus.encode_value("str", source[:200])
        + pus.encode_value("str", message[:1000])
        + pus.encode_value("any", data)
    )


def hk_data(structure: HkStructure, payload: Any) -> bytes:
    """ST[03] report data: structure id (u16), then each field by its type (missing: NaN / minimum / empty)."""
    values = [f.fill(f.pick(payload)) for f in structure.fields]
    return pus.pack_u16(structure.sid) + pus.encode_values([f.type for f in structure.fields], values)


def decode_hk(structure: HkStructure, data: bytes) -> dict[str, Any]:
    """The inverse of hk_data, for ground tools and tests."""
    sid = pus.u16(data, 0)
    if sid != structure.sid:
        raise ValueError(f"structure {sid}, expected {structure.sid}")
    values, _ = pus.decode_values([f.type for f in structure.fields], data, 2)
    return {
        f.path: (None if isinstance(v, float) and math.isnan(v) else v)
        for f, v in zip(structure.fields, values, strict=True)
    }


def value_report(fid: int, value: Any) -> bytes:
    """TM[8,130] (flightos): a function's return value, MessagePack after the function id."""
    return pus.pack_u16(fid) + msgspec.msgpack.encode(value)
