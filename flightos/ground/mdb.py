"""The mission database: stable ids for functions (ST[08]), parameters (ST[20]) and HK structures (ST[03]).

Tables are TOML files: the one shipped with flightos, then a mission's own. An id is never
renumbered: collisions between files are errors that name both files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightos.config import toml

BUILTIN = Path(__file__).with_name("mdb.toml")
INT_MISSING = -(2**63)
"""How a missing integer housekeeping value is sent."""
VALUE_TYPES = ("int", "float", "bool", "str", "bytes", "any")


class MdbError(ValueError):
    """A mission-database table is wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class Function:
    """A command reachable from ground as ST[08] function ``id``."""

    id: int
    service: str
    command: str
    args: tuple[tuple[str, str], ...] | None = None  # None: ask the service (describe)
    source: str = ""

    @property
    def name(self) -> str:
        """``service.command``."""
        return f"{self.service}.{self.command}"


@dataclass(frozen=True)
class ParameterDef:
    """A service parameter reachable from ground as ST[20] parameter ``id``."""

    id: int
    service: str
    name: str
    type: str | None = None  # None: ask the service (list of parameters in describe)
    source: str = ""


@dataclass(frozen=True)
class HkField:
    """One value of a housekeeping structure: a dotted path into a telemetry payload, and its type."""

    path: str
    type: str

    def pick(self, payload: Any) -> Any:
        """The value at the path, or None if any step is missing."""
        node = payload
        for step in self.path.split("."):
            if isinstance(node, dict):
                node = node.get(step)
            elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
                node = node[int(step)]
            else:
                return None
        return node

    def fill(self, value: Any) -> Any:
        """A value safe to encode: missing or unrepresentable numbers are NaN (float) or the minimum i64 (int)."""
        if self.type == "float":
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        if self.type == "int":
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                return INT_MISSING
            as_int = int(value)
            return as_int if INT_MISSING < as_int < 2**63 else INT_MISSING
        if self.type == "bool":
            return bool(value) if isinstance(value, bool) else False
        return value if isinstance(value, str) else ("" if value is None else str(value))


@dataclass(frozen=True)
class HkStructure:
    """An ST[03] report structure built from one telemetry topic."""

    sid: int
    name: str
    topic: str
    fields: tuple[HkField, ...]
    interval_s: float
    enabled: bool
    source: str = ""


@dataclass
class Tables:
    """Every id of the mission, with lookups both ways."""

    functions: dict[int, Function] = field(default_factory=dict)
    parameters: dict[int, ParameterDef] = field(default_factory=dict)
    hk: dict[int, HkStructure] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def function_id(self, service: str, command: str) -> int | None:
        """The id of ``service.command``, if it has one."""
        for f in self.functions.values():
            if f.service == service and f.command == command:
                return f.id
        return None

    def parameter_id(self, service: str, name: str) -> int | None:
        """The id of ``service.name``, if it has one."""
        for p in self.parameters.values():
            if p.service == service and p.name == name:
                return p.id
        return None


def _dotted(where: str, text: Any) -> tuple[str, str]:
    if not isinstance(text, str) or text.count(".") != 1 or not all(text.split(".")):
        raise MdbError(f"{where}: expected 'service.name', got {text!r}")
    service, name = text.split(".")
    return service, name


def _id(where: str, key: str) -> int:
    if not (key.isascii() and key.isdigit()) or not 0 < int(key) < 65536:
        raise MdbError(f"{where}: ids are integers 1..65535, got {key!r}")
    return int(key)


def _table(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MdbError(f"{where}: expected a table, got {type(raw).__name__}")
    return raw


def _args(where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise MdbError(f"{where}.args: expected a list of {{name, type}}")
    out: list[tuple[str, str]] = []
    for i, a in enumerate(raw):
        if (
            not isinstance(a, dict)
            or not isinstance(a.get("name"), str)
            or a.get("type") not in VALUE_TYPES
            or set(a) - {"name", "type"}
        ):
            raise MdbError(f"{where}.args[{i}]: expected {{name = '...', type = one of {VALUE_TYPES}}}")
        if a["name"] in {n for n, _ in out}:
            raise MdbError(f"{where}.args[{i}]: argument {a['name']!r} appears twice")
        out.append((a["name"], a["type"]))
    return tuple(out)


def load(paths: list[Path] | None = None, include_builtin: bool = True) -> Tables:
    """Read the shipped table and the given mission tables; raise MdbError naming any problem."""
    tables = Tables()
    for path in ([BUILTIN] if include_builtin else []) + list(paths or []):
        try:
            raw = toml.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, toml.TOMLDecodeError) as exc:
            raise MdbError(f"{path}: cannot read: {exc}") from None
        _merge(tables, raw, str(path))
        tables.sources.append(str(path))
    return tables


def _merge(t: Tables, raw: dict[str, Any], src: str) -> None:
    unknown = sorted(set(raw) - {"functions", "parameters", "hk"})
    if unknown:
        raise MdbError(f"{src}: unknown table {unknown[0]!r} (known: functions, parameters, hk)")
    for key, entry in _table(f"{src}: functions", raw.get("functions", {})).items():
        where = f"{src}: functions.{key}"
        fid = _id(where, key)
        if fid in t.functions:
            raise MdbError(f"{where}: id {fid} is already {t.functions[fid].name} in {t.functions[fid].source}")
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"command", "args"})
            if extra:
                raise MdbError(f"{where}.{extra[0]}: unknown key (known: command, args)")
            service, command = _dotted(where, entry.get("command"))
            args = _args(where, entry["args"]) if "args" in entry else None
        else:
            (service, command), args = _dotted(where, entry), None
        t.functions[fid] = Function(fid, service, command, args, src)
    for key, entry in _table(f"{src}: parameters", raw.get("parameters", {})).items():
        where = f"{src}: parameters.{key}"
        pid = _id(where, key)
        if pid in t.parameters:
            raise MdbError(f"{where}: id {pid} is already taken in {t.parameters[pid].source}")
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"name", "type"})
            if extra:
                raise MdbError(f"{where}.{extra[0]}: unknown key (known: name, type)")
            service, name = _dotted(where, entry.get("name"))
            ptype = entry.get("type")
            if ptype is not None and ptype not in VALUE_TYPES:
                raise MdbError(f"{where}.type: expected one of {VALUE_TYPES}")
        else:
            (service, name), ptype = _dotted(where, entry), None
        t.parameters[pid] = ParameterDef(pid, service, name, ptype, src)
    for key, entry in _table(f"{src}: hk", raw.get("hk", {})).items():
        where = f"{src}: hk.{key}"
        sid = _id(where, key)
        if sid in t.hk:
            raise MdbError(f"{where}: structure id {sid} is already taken in {t.hk[sid].source}")
        if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
            raise MdbError(f"{where}: expected a table with a topic")
        extra = sorted(set(entry) - {"name", "topic", "interval_s", "enabled", "fields"})
        if extra:
            raise MdbError(f"{where}.{extra[0]}: unknown key (known: name, topic, interval_s, enabled, fields)")
        if not isinstance(entry.get("enabled", True), bool):
            raise MdbError(f"{where}.enabled: expected true or false")
        fields = []
        for i, f in enumerate(entry.get("fields", [])):
            if (
                not isinstance(f, dict)
                or not isinstance(f.get("path"), str)
                or f.get("type") not in ("int", "float", "bool", "str")
            ):
                raise MdbError(f"{where}.fields[{i}]: expected {{path = '...', type = int|float|bool|str}}")
            fields.append(HkField(f["path"], f["type"]))
        interval = entry.get("interval_s", 10.0)
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise MdbError(f"{where}.interval_s: expected a number > 0, got {interval!r}")
        t.hk[sid] = HkStructure(
            sid,
            str(entry.get("name", f"sid{sid}")),
            entry["topic"],
            tuple(fields),
            float(interval),
            bool(entry.get("enabled", True)),
            src,
        )
