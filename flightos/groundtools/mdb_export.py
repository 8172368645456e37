"""The mission database for ground systems: a JSON description, an XTCE 1.2 document, and id assignment.

``as_json`` and ``xtce`` describe what the tables say, with argument and parameter types taken
from the table where it gives them, otherwise from the kernel's command table
(``flightos.kernel.command_docs``, a view of the table its ``describe`` reads) or the installed service plugins,
exactly as the ground service decodes them on board (a declared type outside ``mdb.VALUE_TYPES`` is
``any``). A service that is not installed never breaks an export: its entries are listed as unresolved
(JSON) or left out with a comment (XTCE).

``assign_missing`` gives every ``@command`` and ``Parameter`` of the installed plugins that has no
id yet a new one, appended to a mission table file; ids are never renumbered.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightos import __version__, plugins
from flightos.config import toml
from flightos.ground import mdb
from flightos.ground.codes import Failure
from flightos.kernel.command_docs import KERNEL_ARGUMENTS, KERNEL_COMMANDS
from flightos.kernel.events import EventId
from flightos.sdk.service import ServiceShape

XTCE_NS = "http://www.omg.org/spec/XTCE/20180204"
MISSION_ID_BASE = 20000
"""Ids that ``assign_missing`` hands out start here, clear of the ids flightos ships."""
MAX_ID = 65535

VALUE_ENCODING = {
    "int": "i64 big-endian, two's complement",
    "float": "f64 big-endian, IEEE 754",
    "bool": "u8, 0 or 1",
    "str": "u16 byte count, then UTF-8",
    "bytes": "u16 byte count, then the bytes",
    "any": "u32 byte count, then MessagePack",
}
"""How each value type is laid out in application data (``flightos.ground.pus.encode_value``)."""

EVENT_SEVERITIES = ((1, "informative", "INFO"), (2, "low", "LOW"), (3, "medium", "MEDIUM"), (4, "high", "HIGH"))
"""TM[5,x]: subtype, PUS severity, SDK severity."""

EVENT_FIELDS = (("event_id", "u16"), ("source", "str"), ("message", "str"), ("details", "any"))
"""TM[5,x] source data, in order."""

# Packet geometry (bytes), for sizes XTCE has to compute from the CCSDS length field. The PUS-C TM
# secondary header: version/time status, service, subtype, counter u16, destination u16, then CDS
# short time (P-field, day u16, ms of day u32).
_TM_SECONDARY = 14
_CRC = 2
_REQUEST_ID = 4
_FAILURE_CODE = 2
_STEP_ID = 1
_FUNCTION_ID = 2
_MAX_STR_BITS = 65535 * 8
_REASON_BITS = 200 * 8  # the ground service truncates failure reasons to 200 bytes

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_HEADER = re.compile(r"^\s*\[(\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")


# ---- what the installed plugins declare --------------------------------------------------------------
class _Plugins:
    """Service shapes of installed plugins, loaded once each; a plugin that is missing or broken is None."""

    def __init__(self) -> None:
        self._installed: set[str] | None = None
        self._shapes: dict[str, ServiceShape | None] = {}

    def shape(self, service: str) -> ServiceShape | None:
        if service not in self._shapes:
            self._shapes[service] = self._load(service)
        return self._shapes[service]

    def _load(self, service: str) -> ServiceShape | None:
        if self._installed is None:
            try:
                self._installed = set(plugins.installed())
            except Exception:  # a broken environment must not break an export
                self._installed = set()
        if service not in self._installed:
            return None
        try:
            return ServiceShape.of(plugins.load(service))
        except Exception:  # an import error in a plugin is reported as "unresolved", not raised
            return None


def _wire_type(type_name: str) -> str:
    """The on-board value type of a declared type name (what the ground service decodes)."""
    return type_name if type_name in mdb.VALUE_TYPES else "any"


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a default value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _kernel_docs() -> dict[str, str]:
    return dict(KERNEL_COMMANDS)


@dataclass(frozen=True)
class _Arg:
    name: str
    type: str
    required: bool
    default: Any


@dataclass(frozen=True)
class _Signature:
    args: tuple[_Arg, ...] | None  # None: unknown (the service is not installed or lacks the command)
    doc: str


def _signature(fn: mdb.Function, found: _Plugins, kernel_docs: dict[str, str]) -> _Signature:
    kernel = fn.service == "kernel"
    shape = found.shape(fn.service) if not kernel else None
    bound = shape.commands.get(fn.command) if shape is not None else None
    doc = bound.spec.doc if bound is not None else kernel_docs.get(fn.command, "") if kernel else ""
    if fn.args is not None:
        return _Signature(tuple(_Arg(n, t, True, None) for n, t in fn.args), doc)
    declared = bound.arguments if bound is not None else KERNEL_ARGUMENTS.get(fn.command) if kernel else None
    if declared is None:
        return _Signature(None, doc)
    return _Signature(
        tuple(_Arg(a.name, _wire_type(a.type_name), a.required, None if a.required else a.default) for a in declared),
        doc,
    )


def _parameter(p: mdb.ParameterDef, found: _Plugins) -> dict[str, Any] | None:
    """The declaration of a parameter, or None when its type is unknown."""
    shape = found.shape(p.service)
    param = shape.parameters.get(p.name) if shape is not None else None
    desc = param.describe() if param is not None else {}
    ptype = p.type if p.type is not None else _wire_type(desc["type"]) if desc else None
    if ptype is None:
        return None
    return {
        "id": p.id,
        "service": p.service,
        "name": p.name,
        "type": ptype,
        "default": _plain(desc.get("default")),
        "min": desc.get("min"),
        "max": desc.get("max"),
        "doc": desc.get("doc", ""),
    }


# ---- JSON ---------------------------------------------------------------------------------------------
def as_json(tables: mdb.Tables) -> dict[str, Any]:
    """Everything a ground tool needs to build and read packets: ids, argument and value types, layouts.

    Functions and parameters whose types cannot be learnt (their service is not installed, or it
    does not declare that command or parameter) are listed with ``args``/``type`` None and named
    in ``unresolved``.
    """
    found, kernel_docs = _Plugins(), _kernel_docs()
    unresolved: list[str] = []
    functions = []
    for fid in sorted(tables.functions):
        fn = tables.functions[fid]
        sig = _signature(fn, found, kernel_docs)
        if sig.args is None:
            unresolved.append(fn.name)
        functions.append(
            {
                "id": fid,
                "service": fn.service,
                "command": fn.command,
                "doc": sig.doc,
                "args": None
                if sig.args is None
                else [
                    {"name": a.name, "type": a.type, "required": a.required, "default": _plain(a.default)}
                    for a in sig.args
                ],
            }
        )
    parameters = []
    for pid in sorted(tables.parameters):
        p = tables.parameters[pid]
        entry = _parameter(p, found)
        if entry is None:
            unresolved.append(f"{p.service}.{p.name}")
            entry = {
                "id": pid,
                "service": p.service,
                "name": p.name,
                "type": None,
                "default": None,
                "min": None,
                "max": None,
                "doc": "",
            }
        parameters.append(entry)
    hk = [
        {
            "sid": s.sid,
            "name": s.name,
            "topic": s.topic,
            "interval_s": s.interval_s,
            "enabled": s.enabled,
            "fields": [{"path": f.path, "type": f.type} for f in s.fields],
        }
        for s in (tables.hk[sid] for sid in sorted(tables.hk))
    ]
    return {
        "format": "flightos-mdb/1",
        "flightos": __version__,
        "sources": list(tables.sources),
        "value_encoding": dict(VALUE_ENCODING),
        "functions": functions,
        "parameters": parameters,
        "hk": hk,
        "failure_codes": [{"code": int(f), "name": f.name} for f in Failure],
        "events": {
            "service": 5,
            "subtypes": [
                {"subtype": st, "severity": pus_name, "sdk_severity": sdk} for st, pus_name, sdk in EVENT_SEVERITIES
            ],
            "fields": [{"name": n, "type": t} for n, t in EVENT_FIELDS],
            "kernel_event_ids": [{"id": int(e), "name": e.name} for e in EventId],
        },
        "unresolved": sorted(set(unresolved)),
    }


# ---- XTCE ---------------------------------------------------------------------------------------------
def _el(parent: ET.Element, tag: str, attrs: dict[str, str] | None = None, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, tag, attrs or {})
    if text is not None:
        e.text = text
    return e


def _clean(text: str) -> str:
    return _NAME_BAD.sub("_", text)


class _Names:
    """XTCE names (no dots, slashes, colons, brackets or spaces), unique within one namespace."""

    def __init__(self, *taken: str) -> None:
        self.used = set(taken)

    def take(self, wanted: str, fallback: str = "") -> str:
        name = _clean(wanted)
        if name in self.used and fallback:
            name = _clean(fallback)
        base, n = name, 2
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _int_type(parent: ET.Element, tag: str, name: str, bits: int, signed: bool = False) -> None:
    t = _el(parent, tag, {"name": name, "signed": "true" if signed else "false", "sizeInBits": str(bits)})
    enc = {"sizeInBits": str(bits), "encoding": "twosComplement" if signed else "unsigned"}
    if bits >= 16:
        enc["byteOrder"] = "mostSignificantByteFirst"
    _el(t, "IntegerDataEncoding", enc)


def _value_types(parent: ET.Element, kind: str) -> None:
    """int64, float64, bool8 and string16 as ``Parameter`` or ``Argument`` types."""
    _int_type(parent, f"Integer{kind}Type", "int64", 64, signed=True)
    f = _el(parent, f"Float{kind}Type", {"name": "float64", "sizeInBits": "64"})
    _el(
        f,
        "FloatDataEncoding",
        {"sizeInBits": "64", "encoding": "IEEE754_1985", "byteOrder": "mostSignificantByteFirst"},
    )
    b = _el(parent, f"Boolean{kind}Type", {"name": "bool8", "zeroStringValue": "False", "oneStringValue": "True"})
    _el(b, "IntegerDataEncoding", {"sizeInBits": "8", "encoding": "unsigned"})
    _string_type(parent, f"String{kind}Type", "string16", _MAX_STR_BITS, leading=16)


def _string_type(
    parent: ET.Element, tag: str, name: str, max_bits: int, leading: int = 0, size_from: tuple[str, int] | None = None
) -> None:
    """UTF-8 text: after a ``leading``-bit byte count, or filling a size computed from a parameter."""
    t = _el(parent, tag, {"name": name})
    var = _el(_el(t, "StringDataEncoding", {"encoding": "UTF-8"}), "Variable", {"maxSizeInBits": str(max_bits)})
    dyn = _el(var, "DynamicValue")
    if size_from is None:
        # XTCE wants a DynamicValue even when a leading size field gives the length; Yamcs reads this
        # reserved reference as "none".
        _el(dyn, "ParameterInstanceRef", {"parameterRef": "_yamcs_ignore"})
    else:
        _el(dyn, "ParameterInstanceRef", {"parameterRef": size_from[0]})
        _el(dyn, "LinearAdjustment", {"slope": "8", "intercept": str(size_from[1])})
    if leading:
        _el(var, "LeadingSize", {"sizeInBitsOfSizeTag": str(leading)})


def _binary_type(
    parent: ET.Element, tag: str, name: str, ref_tag: str, ref_attr: str, ref: str, intercept: int = 0
) -> None:
    """Bytes whose size (in bytes, plus ``intercept``/8) is the value of another field."""
    t = _el(parent, tag, {"name": name})
    dyn = _el(_el(_el(t, "BinaryDataEncoding"), "SizeInBits"), "DynamicValue")
    _el(dyn, ref_tag, {ref_attr: ref})
    _el(dyn, "LinearAdjustment", {"slope": "8", "intercept": str(intercept)})


def _data_bits_intercept(*fields: int) -> int:
    """LinearAdjustment intercept for 'the rest of the packet' from the CCSDS length (= data field bytes - 1)."""
    return 8 * (1 - _TM_SECONDARY - sum(fields) - _CRC)


def _container(
    parent: ET.Element,
    name: str,
    entries: list[str],
    base: str | None = None,
    restrict: list[tuple[str, int]] | None = None,
    abstract: bool = False,
    short: str = "",
) -> ET.Element:
    attrs = {"name": name}
    if short:
        attrs["shortDescription"] = short
    if abstract:
        attrs["abstract"] = "true"
    c = _el(parent, "SequenceContainer", attrs)
    lst = _el(c, "EntryList")
    for p in entries:
        _el(lst, "ParameterRefEntry", {"parameterRef": p})
    if base is not None:
        b = _el(c, "BaseContainer", {"containerRef": base})
        if restrict:
            crit = _el(b, "RestrictionCriteria")
            holder = _el(crit, "ComparisonList") if len(restrict) > 1 else crit
            for ref, value in restrict:
                _el(holder, "Comparison", {"parameterRef": ref, "comparisonOperator": "==", "value": str(value)})
    return c


_PRIMARY = (
    ("ccsds_version", "uint3", "packet version number (0)"),
    ("ccsds_type", "uint1", "0 = TM"),
    ("ccsds_sec_hdr_flag", "uint1", "1: a PUS secondary header follows"),
    ("ccsds_apid", "uint11", "application process id"),
    ("ccsds_seq_flags", "uint2", "3 = unsegmented"),
    ("ccsds_seq_count", "uint14", "packet sequence count"),
    ("ccsds_length", "uint16", "packet data field length in bytes, minus 1"),
)
_PUS_TM = (
    ("pus_version", "uint4", "PUS version (2 = PUS-C)"),
    ("pus_time_ref_status", "uint4", "spacecraft time reference status"),
    ("pus_service_type", "uint8", "service type"),
    ("pus_service_subtype", "uint8", "message subtype"),
    ("pus_msg_type_counter", "uint16", "message type counter"),
    ("pus_destination_id", "uint16", "destination id"),
    ("pus_time_pfield", "uint8", "CDS short time: P-field (0x40: CDS, 1958 epoch, 16-bit day)"),
    ("pus_time_days", "uint16", "CDS short time: days since 1958-01-01"),
    ("pus_time_ms", "uint32", "CDS short time: milliseconds of the day"),
)
_REQUEST = (
    ("verif_packet_version", "uint3", "request id: packet version number"),
    ("verif_packet_type", "uint1", "request id: packet type (1 = TC)"),
    ("verif_sec_hdr_flag", "uint1", "request id: secondary header flag"),
    ("verif_apid", "uint11", "request id: APID of the telecommand"),
    ("verif_seq_flags", "uint2", "request id: sequence flags"),
    ("verif_seq_count", "uint14", "request id: sequence count of the telecommand"),
)
_VERIFICATION = (
    (1, "verification_accepted", "TM[1,1] acceptance success", False, False),
    (2, "verification_acceptance_failed", "TM[1,2] acceptance failure", False, True),
    (3, "verification_started", "TM[1,3] start of execution success", False, False),
    (4, "verification_start_failed", "TM[1,4] start of execution failure", False, True),
    (5, "verification_progress", "TM[1,5] progress of execution success", True, False),
    (6, "verification_progress_failed", "TM[1,6] progress of execution failure", True, True),
    (7, "verification_completed", "TM[1,7] completion of execution success", False, False),
    (8, "verification_completion_failed", "TM[1,8] completion of execution failure", False, True),
)
_TC_HEADER_ARGS = ("tc_apid", "tc_ack_flags", "tc_service_type", "tc_service_subtype", "tc_source_id")
_UINTS = (1, 2, 3, 4, 8, 11, 14, 16, 32)


def _telemetry(root: ET.Element, tables: mdb.Tables) -> set[str]:
    """Write the TelemetryMetaData; return the container names it used."""
    tm = _el(root, "TelemetryMetaData")
    types, params, containers = _el(tm, "ParameterTypeSet"), _el(tm, "ParameterSet"), _el(tm, "ContainerSet")
    for bits in _UINTS:
        _int_type(types, "IntegerParameterType", f"uint{bits}", bits)
    _value_types(types, "Parameter")
    codes = _el(
        types, "EnumeratedParameterType", {"name": "failure_code", "shortDescription": "ST[01] failure code (flightos)"}
    )
    _el(
        codes,
        "IntegerDataEncoding",
        {"sizeInBits": "16", "encoding": "unsigned", "byteOrder": "mostSignificantByteFirst"},
    )
    enums = _el(codes, "EnumerationList")
    for f in Failure:
        _el(enums, "Enumeration", {"value": str(int(f)), "label": f.name})
    _string_type(
        types,
        "StringParameterType",
        "failure_reason",
        _REASON_BITS,
        size_from=("ccsds_length", _data_bits_intercept(_REQUEST_ID, _FAILURE_CODE)),
    )
    _string_type(
        types,
        "StringParameterType",
        "progress_failure_reason",
        _REASON_BITS,
        size_from=("ccsds_length", _data_bits_intercept(_REQUEST_ID, _STEP_ID, _FAILURE_CODE)),
    )
    _binary_type(
        types, "BinaryParameterType", "event_details", "ParameterInstanceRef", "parameterRef", "event_details_size"
    )
    _binary_type(
        types,
        "BinaryParameterType",
        "function_value",
        "ParameterInstanceRef",
        "parameterRef",
        "ccsds_length",
        _data_bits_intercept(_FUNCTION_ID),
    )

    def param(name: str, ptype: str, short: str = "", alias: str = "") -> str:
        attrs = {"name": name, "parameterTypeRef": ptype}
        if short:
            attrs["shortDescription"] = short
        p = _el(params, "Parameter", attrs)
        if alias:
            _el(_el(p, "AliasSet"), "Alias", {"nameSpace": "flightos", "alias": alias})
        return name

    header = [param(n, t, d) for n, t, d in _PRIMARY + _PUS_TM]
    _container(
        containers,
        "pus_tm",
        header,
        abstract=True,
        short="CCSDS primary header and PUS-C TM secondary header (CDS short time); a CRC-16 follows the data",
    )

    # ST[01] verification
    request = [param(n, t, d) for n, t, d in _REQUEST]
    step = param("verif_step_id", "uint8", "step id of a progress report")
    code = param("verif_failure_code", "failure_code", "why the telecommand failed")
    reason = param("verif_failure_reason", "failure_reason", "the failure, in words (UTF-8, up to 200 bytes)")
    progress_reason = param(
        "verif_progress_failure_reason", "progress_failure_reason", "the failure, in words (UTF-8, up to 200 bytes)"
    )
    _container(
        containers,
        "verification",
        request,
        "pus_tm",
        [("pus_service_type", 1)],
        abstract=True,
        short="TM[1,x]: the request id of the telecommand",
    )
    for subtype, name, short, has_step, failed in _VERIFICATION:
        entries = ([step] if has_step else []) + ([code, progress_reason if has_step else reason] if failed else [])
        _container(containers, name, entries, "verification", [("pus_service_subtype", subtype)], short=short)

    # ST[03] housekeeping
    sid = param("hk_sid", "uint16", "housekeeping structure id")
    _container(
        containers,
        "hk_report",
        [sid],
        "pus_tm",
        [("pus_service_type", 3), ("pus_service_subtype", 25)],
        abstract=True,
        short="TM[3,25] housekeeping parameter report",
    )
    names, cnames = (
        _Names(*(p.get("name", "") for p in params)),
        _Names(
            "pus_tm",
            "verification",
            "hk_report",
            "event_report",
            "function_value",
            "time_report",
            "are_you_alive_report",
            "connection_test_report",
            *(v[1] for v in _VERIFICATION),
        ),
    )
    value_type = {"int": "int64", "float": "float64", "bool": "bool8", "str": "string16"}
    for s in (tables.hk[k] for k in sorted(tables.hk)):
        cname = cnames.take(f"hk_{s.name}", f"hk_{s.name}_{s.sid}")
        fields = [
            param(
                names.take(f"{cname}__{f.path.replace('.', '__')}"),
                value_type[f.type],
                f"{s.topic}: {f.path}",
                f"{s.name}.{f.path}",
            )
            for f in s.fields
        ]
        _container(
            containers,
            cname,
            fields,
            "hk_report",
            [("hk_sid", s.sid)],
            short=f"TM[3,25] sid {s.sid}: {s.name} (from {s.topic}, every {s.interval_s:g} s)",
        )

    # ST[05] events
    event = [
        param("event_id", "uint16", "event id (kernel ids: docs/events.md)"),
        param("event_source", "string16", "the service that raised it"),
        param("event_message", "string16", "what happened"),
        param("event_details_size", "uint32", "byte count of event_details"),
        param("event_details", "event_details", "details, MessagePack"),
    ]
    _container(
        containers,
        "event_report",
        event,
        "pus_tm",
        [("pus_service_type", 5)],
        short="TM[5,x] event report; subtype = severity (1 informative, 2 low, 3 medium, 4 high)",
    )

    # ST[08] function values, ST[09] time, ST[17] test
    value = [
        param("function_value_id", "uint16", "the function that returned it"),
        param("function_value", "function_value", "its return value, MessagePack"),
    ]
    _container(
        containers,
        "function_value",
        value,
        "pus_tm",
        [("pus_service_type", 8), ("pus_service_subtype", 130)],
        short="TM[8,130] (flightos): the value a function returned",
    )
    now = [
        param("onboard_time_pfield", "uint8", "CDS short time: P-field (0x40)"),
        param("onboard_time_days", "uint16", "CDS short time: days since 1958-01-01"),
        param("onboard_time_ms", "uint32", "CDS short time: milliseconds of the day"),
    ]
    _container(
        containers,
        "time_report",
        now,
        "pus_tm",
        [("pus_service_type", 9), ("pus_service_subtype", 2)],
        short="TM[9,2] (flightos): the on-board time",
    )
    _container(
        containers,
        "are_you_alive_report",
        [],
        "pus_tm",
        [("pus_service_type", 17), ("pus_service_subtype", 2)],
        short="TM[17,2] are-you-alive report",
    )
    _container(
        containers,
        "connection_test_report",
        [param("connection_test_apid", "uint16", "the APID tested")],
        "pus_tm",
        [("pus_service_type", 17), ("pus_service_subtype", 4)],
        short="TM[17,4] on-board connection test report",
    )
    return cnames.used


def _initial_value(wire: str, default: Any) -> str | None:
    """A default as an XTCE initialValue, when it is a plain value of the wire type."""
    if wire == "bool" and isinstance(default, bool):
        return "True" if default else "False"
    if wire == "int" and type(default) is int:
        return str(default)
    if (
        wire == "float"
        and isinstance(default, (int, float))
        and not isinstance(default, bool)
        and math.isfinite(default)
    ):
        return repr(float(default))
    if wire == "str" and isinstance(default, str):
        return default
    return None


def _commands(root: ET.Element, tables: mdb.Tables, containers: set[str]) -> None:
    cmd = _el(root, "CommandMetaData")
    types, commands = _el(cmd, "ArgumentTypeSet"), _el(cmd, "MetaCommandSet")
    for bits in (4, 8, 11, 16, 32):
        _int_type(types, "IntegerArgumentType", f"uint{bits}", bits)
    _value_types(types, "Argument")

    base = _el(
        commands,
        "MetaCommand",
        {
            "name": "pus_tc",
            "abstract": "true",
            "shortDescription": "PUS-C telecommand: CCSDS primary header and TC secondary header",
        },
    )
    _el(
        base,
        "LongDescription",
        text=(
            "The ground system fills the sequence count and the packet length, and appends the CRC-16 "
            "(CRC-16-CCITT) after the application data. On targets with authentication (the default), an "
            "authentication trailer goes between the application data and the CRC: key id (u16), "
            "anti-replay counter (u64) and a 16-byte MAC (HMAC-SHA256 over the packet up to the MAC, "
            "truncated); see flightos.ground.security. Acknowledgement flags: bit 0 acceptance, 1 start, "
            "2 progress, 3 completion."
        ),
    )
    args = _el(base, "ArgumentList")
    for name, atype, initial in zip(
        _TC_HEADER_ARGS, ("uint11", "uint4", "uint8", "uint8", "uint16"), ("100", "15", None, None, "0"), strict=True
    ):
        attrs = {"name": name, "argumentTypeRef": atype}
        if initial is not None:
            attrs["initialValue"] = initial
        _el(args, "Argument", attrs)
    entries = _el(_el(base, "CommandContainer", {"name": "pus_tc"}), "EntryList")
    for name, value, bits in (("ccsds_version", "00", 3), ("ccsds_type", "01", 1), ("ccsds_sec_hdr_flag", "01", 1)):
        _el(entries, "FixedValueEntry", {"name": name, "binaryValue": value, "sizeInBits": str(bits)})
    _el(entries, "ArgumentRefEntry", {"argumentRef": "tc_apid"})
    for name, value, bits in (
        ("ccsds_seq_flags", "03", 2),
        ("ccsds_seq_count", "0000", 14),
        ("ccsds_length", "0000", 16),
        ("pus_version", "02", 4),
    ):
        _el(entries, "FixedValueEntry", {"name": name, "binaryValue": value, "sizeInBits": str(bits)})
    for name in _TC_HEADER_ARGS[1:]:
        _el(entries, "ArgumentRefEntry", {"argumentRef": name})

    perform = _el(
        commands,
        "MetaCommand",
        {"name": "perform_function", "abstract": "true", "shortDescription": "TC[8,1] perform a function"},
    )
    assign = _el(_el(perform, "BaseMetaCommand", {"metaCommandRef": "pus_tc"}), "ArgumentAssignmentList")
    _el(assign, "ArgumentAssignment", {"argumentName": "tc_service_type", "argumentValue": "8"})
    _el(assign, "ArgumentAssignment", {"argumentName": "tc_service_subtype", "argumentValue": "1"})
    c = _el(perform, "CommandContainer", {"name": "perform_function"})
    _el(c, "EntryList")
    _el(c, "BaseContainer", {"containerRef": "pus_tc"})

    found, kernel_docs = _Plugins(), _kernel_docs()
    names = _Names("pus_tc", "perform_function", *containers)  # command and TM containers never share a name
    for fid in sorted(tables.functions):
        fn = tables.functions[fid]
        sig = _signature(fn, found, kernel_docs)
        if sig.args is None:
            note = (
                f" function {fid} ({fn.name}) left out: its arguments are unknown because service "
                f"{fn.service!r} is not installed or does not declare {fn.command!r} "
            )
            commands.append(ET.Comment(re.sub("-+", "-", note)))
            continue
        name = names.take(f"{fn.service}_{fn.command}", f"{fn.service}_{fn.command}_{fid}")
        _function_command(commands, types, name, fn, sig.args, sig.doc)


_ARG_TYPES = {"int": "int64", "float": "float64", "bool": "bool8", "str": "string16"}


def _function_command(
    commands: ET.Element, types: ET.Element, name: str, fn: mdb.Function, args: tuple[_Arg, ...], doc: str
) -> None:
    """One TC[8,1] MetaCommand: the function id as a fixed value, then the arguments in order."""
    attrs = {"name": name}
    if doc:
        attrs["shortDescription"] = doc
    mc = _el(commands, "MetaCommand", attrs)
    _el(mc, "LongDescription", text=f"ST[08] function {fn.id}: {fn.name}." + (f" {doc}" if doc else ""))
    aliases = _el(mc, "AliasSet")
    _el(aliases, "Alias", {"nameSpace": "flightos", "alias": fn.name})
    _el(aliases, "Alias", {"nameSpace": "PUS_function_id", "alias": str(fn.id)})
    _el(mc, "BaseMetaCommand", {"metaCommandRef": "perform_function"})
    arg_list = _el(mc, "ArgumentList")
    c = _el(mc, "CommandContainer", {"name": name})
    entries = _el(c, "EntryList")
    _el(entries, "FixedValueEntry", {"name": "function_id", "binaryValue": f"{fn.id:04X}", "sizeInBits": "16"})
    arg_names = _Names(*_TC_HEADER_ARGS)
    for a in args:
        aname = arg_names.take(a.name, f"{a.name}_arg")
        if a.type in _ARG_TYPES:
            attrs = {"name": aname, "argumentTypeRef": _ARG_TYPES[a.type]}
            initial = None if a.required else _initial_value(a.type, a.default)
            if initial is not None:
                attrs["initialValue"] = initial
            _el(arg_list, "Argument", attrs)
        else:  # bytes / any: a byte count, then the bytes (MessagePack for any)
            size = arg_names.take(f"{aname}_size")
            _el(
                arg_list,
                "Argument",
                {
                    "name": size,
                    "argumentTypeRef": "uint16" if a.type == "bytes" else "uint32",
                    "shortDescription": f"byte count of {aname}",
                },
            )
            tname = f"{name}__{aname}"
            _binary_type(types, "BinaryArgumentType", tname, "ArgumentInstanceRef", "argumentRef", size)
            _el(
                arg_list,
                "Argument",
                {
                    "name": aname,
                    "argumentTypeRef": tname,
                    "shortDescription": "raw bytes" if a.type == "bytes" else "MessagePack",
                },
            )
            _el(entries, "ArgumentRefEntry", {"argumentRef": size})
        _el(entries, "ArgumentRefEntry", {"argumentRef": aname})
    if not len(arg_list):
        mc.remove(arg_list)  # XTCE wants at least one Argument in a list
    _el(c, "BaseContainer", {"containerRef": "perform_function"})


def xtce(tables: mdb.Tables) -> str:
    """The mission database as an XTCE 1.2 document (SpaceSystem ``flightos``), for Yamcs-style ground systems.

    Deterministic: the same tables and plugins give the same bytes. Functions whose arguments are
    unknown (their service is not installed) are left out, with a comment in their place.
    """
    root = ET.Element(
        "SpaceSystem", {"xmlns": XTCE_NS, "name": "flightos", "shortDescription": "flightos mission database (PUS-C)"}
    )
    _el(
        root,
        "LongDescription",
        text=(
            "Generated by flightos mdb export from: "
            + ", ".join(Path(s).name for s in tables.sources)
            + ". Values: int = i64 BE, float = f64 BE (IEEE 754), bool = u8, str = u16 byte count + UTF-8, "
            "bytes = u16 byte count + bytes, any = u32 byte count + MessagePack. Names with a dot in flightos "
            "(service.command, structure.path) are aliases in the 'flightos' namespace."
        ),
    )
    _el(root, "Header", {"version": __version__, "validationStatus": "Working"})
    _commands(root, tables, _telemetry(root, tables))
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- assigning ids ------------------------------------------------------------------------------------
_NEW_FILE = """\
# Mission database of this mission's own services: ST[08] function ids and ST[20] parameter ids.
# Ids are stable: never renumber or reuse one. `flightos mdb assign --table {name}` appends ids for
# commands and parameters that have none (from {base} up, clear of the ids flightos ships).
# The ground service reads it with: [services.ground.options] mdb = ["{name}"]

[functions]

[parameters]
"""


def _names_in(raw: dict[str, Any], table: str, key: str) -> tuple[set[int], set[str]]:
    ids: set[int] = set()
    names: set[str] = set()
    for k, v in (raw.get(table) or {}).items():
        if isinstance(k, str) and k.isdigit():
            ids.add(int(k))
        text = v.get(key) if isinstance(v, dict) else v
        if isinstance(text, str):
            names.add(text)
    return ids, names


def _insert(lines: list[str], table: str, new: list[str]) -> list[str]:
    """``lines`` with ``new`` key lines added at the end of ``[table]`` (a new table at the end if none)."""
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := _HEADER.match(line)) and not m.group(1) and m.group(2).replace(" ", "") == table
        ),
        None,
    )
    if start is None:
        return [*lines, *(["\n"] if lines else []), f"[{table}]\n", *new]
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    last = max(
        (i for i in range(start + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")), default=start
    )
    return lines[: last + 1] + new + lines[last + 1 :]


def assign_missing(tables: mdb.Tables, path: Path) -> list[tuple[int, str]]:
    """Give every command and parameter of the installed plugins that has no id one, in the table at ``path``.

    New function ids start at max(20000, highest function id + 1), parameter ids likewise; existing
    lines are kept as they are. Returns the added (id, "service.name") pairs: functions first, then
    parameters. The file is created (with a header comment) if missing, checked to load with
    ``mdb.load`` and replaced atomically. A plugin that fails to load is skipped with a warning.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else None
    try:
        raw = toml.loads(text) if text else {}
    except toml.TOMLDecodeError as exc:
        raise mdb.MdbError(f"{path}: cannot read: {exc}") from None
    fids, fnames = _names_in(raw, "functions", "command")
    pids, pnames = _names_in(raw, "parameters", "name")
    fids |= set(tables.functions)
    fnames |= {f.name for f in tables.functions.values()}
    pids |= set(tables.parameters)
    pnames |= {f"{p.service}.{p.name}" for p in tables.parameters.values()}

    wanted_f: list[str] = []
    wanted_p: list[str] = []
    for service in sorted(plugins.installed()):
        try:
            shape = ServiceShape.of(plugins.load(service))
        except Exception as exc:
            warnings.warn(f"mdb assign: service {service!r} skipped: {exc}", stacklevel=2)
            continue
        wanted_f += [f"{service}.{c}" for c in shape.commands if "." not in c and f"{service}.{c}" not in fnames]
        wanted_p += [f"{service}.{p}" for p in shape.parameters if f"{service}.{p}" not in pnames]

    def number(names: list[str], taken: set[int], what: str) -> list[tuple[int, str]]:
        first = max(MISSION_ID_BASE, max(taken, default=0) + 1)
        if names and first + len(names) - 1 > MAX_ID:
            raise mdb.MdbError(f"{path}: no {what} ids left above {first - 1} for {len(names)} new entries")
        return [(first + i, name) for i, name in enumerate(names)]

    new_f, new_p = number(wanted_f, fids, "function"), number(wanted_p, pids, "parameter")
    if text is not None and not new_f and not new_p:
        return []
    lines = (text if text is not None else _NEW_FILE.format(name=path.name, base=MISSION_ID_BASE)).splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if new_f:
        lines = _insert(lines, "functions", [f"{i} = {json.dumps(n)}\n" for i, n in new_f])
    if new_p:
        lines = _insert(lines, "parameters", [f"{i} = {json.dumps(n)}\n" for i, n in new_p])

    tmp = path.with_name(f".{path.name}.assign.tmp")
    tmp.write_text("".join(lines))
    try:
        check = toml.loads(tmp.read_text())
        added_ok = all(str(i) in (check.get("functions") or {}) for i, _ in new_f) and all(
            str(i) in (check.get("parameters") or {}) for i, _ in new_p
        )
        if not added_ok:
            raise mdb.MdbError(
                f"{path}: the new ids would not land in its [functions]/[parameters] tables; "
                "write those as [functions] and [parameters] tables"
            )
        mdb.load([tmp])
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except (mdb.MdbError, toml.TOMLDecodeError) as exc:
        reason = str(exc).replace(str(tmp), str(path))
        raise mdb.MdbError(f"{path}: not changed, the result would not load: {reason}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return new_f + new_p
