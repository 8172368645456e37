"""A tolerant parser of one ``tegrastats`` line (written from the format, not from jetson-stats)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hal.errors import HalParseError

_DATE = re.compile(r"^\d{2}-\d{2}-\d{4}$")
_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")
_MEM = re.compile(r"^(\d+)/(\d+)([kKMG]B)(\(.*)?$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NUM = r"-?\d+(?:\.\d+)?"
_TEMP = re.compile(rf"^([A-Za-z][A-Za-z0-9_\-]*)@({_NUM})C(?:/({_NUM})C)*$")
_LOAD = re.compile(r"^(\d+)%(?:@(?:(\d+)|\[([\d,]*)\]))?$")
_RAIL = re.compile(rf"^({_NUM})(?:mW)?/({_NUM})(?:mW)?(?:/({_NUM})(?:mW)?)?$")
_CPU = re.compile(r"^(\d+)%(?:@(\d+))?$")

_UNITS = {"kB": 1 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


@dataclass(frozen=True)
class CpuSample:
    """One core in the CPU list: load %, MHz, or offline."""

    online: bool
    load_pct: float | None = None
    freq_mhz: float | None = None


@dataclass(frozen=True)
class LoadFreq:
    """An engine with load (%) and one or more frequencies (MHz): EMC_FREQ, GR3D_FREQ..."""

    load_pct: float
    freq_mhz: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class RailSample:
    """A power rail: current, average and (on newer JetPacks) a third value, in mW."""

    cur_mw: float
    avg_mw: float
    max_mw: float | None = None


@dataclass(frozen=True)
class TegrastatsSample:
    """Everything one tegrastats line says; absent sections are None/empty."""

    timestamp: str | None
    ram_used_mb: float | None
    ram_total_mb: float | None
    swap_used_mb: float | None
    swap_total_mb: float | None
    cpus: list[CpuSample]
    loads: dict[str, LoadFreq]
    engines: dict[str, float | None]
    temps_c: dict[str, float | None]
    rails: dict[str, RailSample]
    unparsed: list[str]

    @property
    def gpu(self) -> LoadFreq | None:
        """GR3D_FREQ, the GPU."""
        return self.loads.get("GR3D_FREQ")

    @property
    def emc(self) -> LoadFreq | None:
        """EMC_FREQ, the memory controller (absent on some lines)."""
        return self.loads.get("EMC_FREQ")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HalParseError(f"tegrastats: non-finite number {text!r}")
    return value


def _skip_paren(tokens: list[str], i: int) -> int:
    """Skip a '(lfb 1x2MB)' or '(cached 7MB)' group starting at tokens[i]."""
    if i < len(tokens) and tokens[i].startswith("("):
        while i < len(tokens) and not tokens[i].endswith(")"):
            i += 1
        return i + 1
    return i


def _memory(tokens: list[str], i: int) -> tuple[float, float, int]:
    if i >= len(tokens):
        raise HalParseError("tegrastats: memory value missing")
    match = _MEM.match(tokens[i])
    if match is None:
        raise HalParseError(f"tegrastats: bad memory value {tokens[i][:40]!r}")
    scale = _UNITS.get(match.group(3), 1.0)
    used, total = float(match.group(1)) * scale, float(match.group(2)) * scale
    i += 1
    if match.group(4) is not None and not match.group(4).endswith(")"):
        while i < len(tokens) and not tokens[i].endswith(")"):
            i += 1
        i += 1
    return used, total, _skip_paren(tokens, i)


def _cpus(token: str) -> list[CpuSample]:
    if not (token.startswith("[") and token.endswith("]")):
        raise HalParseError(f"tegrastats: bad CPU list {token[:40]!r}")
    out = []
    for item in token[1:-1].split(","):
        if item == "off":
            out.append(CpuSample(online=False))
            continue
        match = _CPU.match(item)
        if match is None:
            raise HalParseError(f"tegrastats: bad CPU entry {item[:20]!r}")
        freq = float(match.group(2)) if match.group(2) else None
        out.append(CpuSample(online=True, load_pct=float(match.group(1)), freq_mhz=freq))
    return out


def parse_line(line: str) -> TegrastatsSample:
    """Parse one tegrastats line; raises HalParseError if it is not one."""
    if not isinstance(line, str):
        raise HalParseError("tegrastats: expected a str")
    tokens = line.split()
    timestamp = None
    if len(tokens) >= 2 and _DATE.match(tokens[0]) and _TIME.match(tokens[1]):
        timestamp = f"{tokens[0]} {tokens[1]}"
        tokens = tokens[2:]
    ram: tuple[float, float] | None = None
    swap: tuple[float, float] | None = None
    cpus: list[CpuSample] = []
    loads: dict[str, LoadFreq] = {}
    engines: dict[str, float | None] = {}
    temps: dict[str, float | None] = {}
    rails: dict[str, RailSample] = {}
    unparsed: list[str] = []
    seen_cpu = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok in ("RAM", "SWAP", "IRAM"):
            used, total, i = _memory(tokens, i + 1)
            if tok == "RAM":
                ram = (used, total)
            elif tok == "SWAP":
                swap = (used, total)
            continue
        if tok == "CPU" and nxt is not None and nxt.startswith("["):
            cpus = _cpus(nxt)
            seen_cpu = True
            i += 2
            continue
        if tok == "MTS":  # 'MTS fg 0% bg 0%' (Xavier)
            j = i + 1
            while j + 1 < len(tokens) and tokens[j] in ("fg", "bg"):
                m = _LOAD.match(tokens[j + 1])
                if m is not None:
                    loads[f"MTS_{tokens[j].upper()}"] = LoadFreq(load_pct=float(m.group(1)))
                j += 2
            i = j
            continue
        temp = _TEMP.match(tok)
        if temp is not None:
            value = _float(temp.group(2))
            temps[temp.group(1)] = None if value <= -200.0 else value  # -256C: zone powered off
            i += 1
            continue
        if _NAME.match(tok) and nxt is not None:
            load = _LOAD.match(nxt)
            rail = _RAIL.match(nxt)
            if load is not None:
                if load.group(2):
                    freqs = [float(load.group(2))]
                elif load.group(3):
                    freqs = [float(f) for f in load.group(3).split(",") if f]
                else:
                    freqs = []
                loads[tok] = LoadFreq(load_pct=float(load.group(1)), freq_mhz=freqs)
                i += 2
                continue
            if rail is not None:
                if tok.upper() == "NC":  # not-connected channel
                    i += 2
                    continue
                third = _float(rail.group(3)) if rail.group(3) else None
                rails[tok] = RailSample(_float(rail.group(1)), _float(rail.group(2)), third)
                i += 2
                continue
            if nxt == "off":
                engines[tok] = None
                i += 2
                continue
            if nxt.isascii() and nxt.isdigit():  # "²".isdigit() is True, float("²") fails
                engines[tok] = float(nxt)
                i += 2
                continue
        unparsed.append(tok)
        i += 1
    if ram is None and not seen_cpu:
        raise HalParseError(f"tegrastats: no RAM or CPU section in {line[:60]!r}")
    return TegrastatsSample(
        timestamp=timestamp,
        ram_used_mb=ram[0] if ram else None,
        ram_total_mb=ram[1] if ram else None,
        swap_used_mb=swap[0] if swap else None,
        swap_total_mb=swap[1] if swap else None,
        cpus=cpus,
        loads=loads,
        engines=engines,
        temps_c=temps,
        rails=rails,
        unparsed=unparsed,
    )
