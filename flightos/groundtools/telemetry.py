"""Telemetry and scheduled telecommands decoded by the mission database, as `flightos ground` shows them.

``decode`` turns one TM packet into a plain dict (events with text and fields, HK with named values,
products with name and size, ...); ``line`` renders it in one line. Nothing here raises on odd input:
an unknown packet says so with its type and length, a malformed one says why it could not be read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from flightos.ground import mdb, pus
from flightos.ground.codes import Failure

SEVERITIES = {1: "INFO", 2: "LOW", 3: "MEDIUM", 4: "HIGH"}
"""ST[05] subtype -> severity."""
STEPS = {
    1: "acceptance",
    2: "acceptance",
    3: "start",
    4: "start",
    5: "progress",
    6: "progress",
    7: "completion",
    8: "completion",
}
"""ST[01] subtype -> the verification stage it reports."""


@dataclass
class Declarations:
    """Argument and parameter types of the mission database, from the tables, the kernel or installed plugins."""

    tables: mdb.Tables
    _shapes: dict[str, Any] = field(default_factory=dict)

    def _shape(self, service: str) -> Any:
        if service not in self._shapes:
            from flightos import plugins
            from flightos.sdk.service import ServiceShape

            try:
                self._shapes[service] = ServiceShape.of(plugins.load(service))
            except Exception:  # not installed here, or broken: its values cannot be typed
                self._shapes[service] = None
        return self._shapes[service]

    def arguments(self, fn: mdb.Function) -> list[tuple[str, str]] | None:
        """A function's (name, wire type) arguments, or None when nothing here declares them."""
        if fn.args is not None:
            return list(fn.args)
        if fn.service == "kernel":
            from flightos.kernel.command_docs import KERNEL_ARGUMENTS

            declared = KERNEL_ARGUMENTS.get(fn.command)
        else:
            shape = self._shape(fn.service)
            bound = shape.commands.get(fn.command) if shape is not None else None
            declared = bound.arguments if bound is not None else None
        if declared is None:
            return None
        return [(a.name, a.type_name if a.type_name in mdb.VALUE_TYPES else "any") for a in declared]

    def parameter_type(self, p: mdb.ParameterDef) -> str | None:
        """A parameter's wire type, or None when nothing here declares it."""
        if p.type is not None:
            return p.type
        shape = self._shape(p.service)
        param = shape.parameters.get(p.name) if shape is not None else None
        if param is None:
            return None
        t = param.describe()["type"]
        return t if t in mdb.VALUE_TYPES else "any"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _plain(value: Any) -> Any:
    """JSON-safe: bytes as hex, NaN/inf as None."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def decode(tm: Any, decl: Declarations) -> dict[str, Any]:
    """One TM packet (a spacepackets ``PusTm``) as a plain dict; ``kind`` says what it is."""
    service, subtype = int(tm.service), int(tm.message_subtype)
    data = bytes(tm.source_data)
    out: dict[str, Any] = {"service": service, "subtype": subtype, "seq": int(tm.seq_count), "length": len(data)}
    try:
        out["time"] = _iso(pus.cds_to_unix(bytes(tm.timestamp)))
    except Exception:
        out["time"] = None
    try:
        out.update(_body(service, subtype, data, decl))
    except (ValueError, IndexError, KeyError, msgspec.DecodeError) as exc:
        out.update(kind="undecodable", error=str(exc) or type(exc).__name__)
    return out


def _body(service: int, subtype: int, data: bytes, decl: Declarations) -> dict[str, Any]:
    key = (service, subtype)
    if service == 5 and subtype in SEVERITIES:
        eid = pus.u16(data, 0)
        (source, message, details), _ = pus.decode_values(["str", "str", "any"], data, 2)
        return {
            "kind": "event",
            "event_id": eid,
            "severity": SEVERITIES[subtype],
            "source": source,
            "message": message,
            "data": _plain(details),
        }
    if key == (3, 25):
        return _housekeeping(data, decl.tables)
    if key == (128, 1):
        (source, name), offset = pus.decode_values(["str", "str"], data, 0, exact=False)
        size = pus.u32(data, offset)
        (product,), _ = pus.decode_values(["any"], data, offset)
        return {"kind": "product", "source": source, "name": name, "size": size, "data": _plain(product)}
    if service == 1 and subtype in STEPS:
        return _verification(subtype, data)
    if key == (8, 130):
        fid = pus.u16(data, 0)
        fn = decl.tables.functions.get(fid)
        return {
            "kind": "function_value",
            "function_id": fid,
            "function": fn.name if fn else None,
            "value": _plain(msgspec.msgpack.decode(data[2:])),
        }
    if key == (20, 2):
        return _parameters(data, decl)
    if key == (9, 2):
        return {"kind": "time", "utc": _iso(pus.cds_to_unix(data))}
    if key == (11, 10):
        return {"kind": "schedule", "activities": activities(data, decl)}
    if key == (11, 13):
        n = pus.u16(data, 0)
        return {
            "kind": "schedule_summary",
            "activities": [
                {
                    "release": _iso(pus.cds_to_unix(data[2 + 11 * i : 9 + 11 * i])),
                    "request_id": f"0x{pus.u32(data, 9 + 11 * i):08x}",
                }
                for i in range(n)
            ],
        }
    if key == (17, 2):
        return {"kind": "alive"}
    if key == (17, 4):
        return {"kind": "connection_test", "apid": pus.u16(data, 0)}
    return {"kind": "unknown"}


def _housekeeping(data: bytes, tables: mdb.Tables) -> dict[str, Any]:
    sid = pus.u16(data, 0)
    structure = tables.hk.get(sid)
    if structure is None:
        return {"kind": "unknown", "sid": sid, "why": f"no housekeeping structure {sid} in the mission database"}
    values, _ = pus.decode_values([f.type for f in structure.fields], data, 2)
    named = {
        f.path: (None if isinstance(v, float) and math.isnan(v) else None if v == mdb.INT_MISSING else v)
        for f, v in zip(structure.fields, values, strict=True)
    }
    return {"kind": "housekeeping", "sid": sid, "name": structure.name, "values": named}


def _verification(subtype: int, data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "verification",
        "stage": STEPS[subtype],
        "success": subtype % 2 == 1,
        "request_id": f"0x{pus.u32(data, 0):08x}",
    }
    offset = 4
    if subtype in (5, 6):
        out["step"] = data[offset]
        offset += 1
    if subtype % 2 == 0:
        code = pus.u16(data, offset)
        out["failure"] = Failure(code).name if code in Failure._value2member_map_ else code
        out["reason"] = data[offset + 2 :].decode(errors="replace")
    return out


def _parameters(data: bytes, decl: Declarations) -> dict[str, Any]:
    n, offset = pus.u16(data, 0), 2
    values: dict[str, Any] = {}
    for _ in range(n):
        pid = pus.u16(data, offset)
        p = decl.tables.parameters.get(pid)
        ptype = decl.parameter_type(p) if p is not None else None
        if p is None or ptype is None:  # the rest cannot be read without this one's length
            raise ValueError(f"parameter {pid} has no type in the mission database here")
        value, offset = pus.decode_value(ptype, data, offset + 2)
        values[f"{p.service}.{p.name}"] = _plain(value)
    return {"kind": "parameters", "values": values}


def activities(data: bytes, decl: Declarations) -> list[dict[str, Any]]:
    """TM[11,10]'s (release time, telecommand) pairs, each telecommand named by the mission database."""
    n, offset = pus.u16(data, 0), 2
    out = []
    for _ in range(n):
        release = pus.cds_to_unix(data[offset : offset + pus.TIMESTAMP_LEN])
        offset += pus.TIMESTAMP_LEN
        if offset + pus.HEADER_LEN > len(data):
            raise ValueError(f"activity at byte {offset}: no telecommand")
        length = int.from_bytes(data[offset + 4 : offset + 6], "big") + 7
        raw = data[offset : offset + length]
        offset += length
        out.append({"release": _iso(release), **telecommand(raw, decl)})
    return out


def telecommand(raw: bytes, decl: Declarations) -> dict[str, Any]:
    """A stored telecommand: its request id, type and, for TC[8,1], the function and its arguments by name."""
    try:
        tc = pus.parse_tc(raw)
    except pus.TcError as exc:
        return {"request_id": None, "tc": None, "error": exc.message}
    out: dict[str, Any] = {"request_id": f"0x{tc.request_id.as_u32():08x}", "tc": f"TC[{tc.service},{tc.subtype}]"}
    if (tc.service, tc.subtype) != (8, 1):
        return out
    data = tc.app_data
    try:
        fid = pus.u16(data, 0)
    except ValueError as exc:
        return {**out, "error": str(exc)}
    fn = decl.tables.functions.get(fid)
    out["function_id"] = fid
    if fn is None:
        return {**out, "error": f"no function {fid} in the mission database"}
    out.update(service=fn.service, command=fn.command)
    sig = decl.arguments(fn)
    if sig is None:
        return {**out, "error": f"{fn.name}: its arguments are not declared here (service not installed)"}
    try:
        values, _ = pus.decode_values([t for _, t in sig], data, 2)
    except ValueError as exc:
        return {**out, "error": f"{fn.name}: {exc}"}
    out["args"] = {n: _plain(v) for (n, _), v in zip(sig, values, strict=True)}
    return out


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str):
        return v if v and " " not in v and "=" not in v else repr(v)
    return str(v) if not isinstance(v, (dict, list)) else msgspec.json.encode(v).decode()


def _pairs(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def command_text(act: dict[str, Any]) -> str:
    """``test.record key=x``, or the telecommand type, or what could not be read."""
    if "command" in act:
        text = f"{act['service']}.{act['command']}"
        if act.get("args"):
            text += " " + _pairs(act["args"])
    else:
        text = act.get("tc") or "?"
        if "function_id" in act:
            text += f" function {act['function_id']}"
    return text + (f" ({act['error']})" if act.get("error") else "")


def line(d: dict[str, Any]) -> str:
    """One decoded packet in one line."""
    head = f"{d.get('time') or '-'} TM[{d['service']},{d['subtype']}] seq {d['seq']}"
    kind = d.get("kind")
    if kind == "event":
        details = f" ({_pairs(d['data'])})" if isinstance(d["data"], dict) and d["data"] else ""
        return f"{head} event {d['event_id']} {d['severity']} from {d['source']}: {d['message']}{details}"
    if kind == "housekeeping":
        return f"{head} HK {d['sid']} {d['name']}: {_pairs(d['values'])}"
    if kind == "product":
        return f"{head} product {d['name']} from {d['source']}, {d['size']} bytes"
    if kind == "verification":
        step = f" step {d['step']}" if "step" in d else ""
        if d["success"]:
            return f"{head} {d['stage']}{step} of request {d['request_id']}: ok"
        return f"{head} {d['stage']}{step} of request {d['request_id']} FAILED: {d['failure']}: {d['reason']}"
    if kind == "function_value":
        return (
            f"{head} value of function {d['function_id']} ({d['function'] or 'not in the mission database'}): "
            f"{_value(d['value'])}"
        )
    if kind == "parameters":
        return f"{head} parameters: {_pairs(d['values'])}"
    if kind == "time":
        return f"{head} on-board time {d['utc']}"
    if kind == "schedule":
        return f"{head} schedule: " + (
            "; ".join(f"{a['release']} {command_text(a)}" for a in d["activities"]) or "empty"
        )
    if kind == "schedule_summary":
        return f"{head} schedule summary: " + (
            "; ".join(f"{a['release']} {a['request_id']}" for a in d["activities"]) or "empty"
        )
    if kind == "alive":
        return f"{head} alive"
    if kind == "connection_test":
        return f"{head} connection test of APID {d['apid']}: ok"
    if kind == "undecodable":
        return f"{head} {d['length']} bytes: cannot be decoded: {d['error']}"
    return f"{head}: {d.get('why', 'not in the mission database')}, {d['length']} bytes"
