"""CPU topology from /sys/devices/system/cpu/{possible,present,online,offline} (range syntax)."""

from __future__ import annotations

from dataclasses import dataclass

from hal.errors import HalParseError
from hal.fs import Fs, Probe

CPU_DIR = "/sys/devices/system/cpu"


def parse_cpu_list(text: str) -> list[int]:
    """Parse the kernel's CPU list syntax ('0-3,5,7-8'; empty means none) into sorted ints."""
    out: set[int] = set()
    text = text.strip()
    if not text:
        return []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise HalParseError(f"bad CPU list {text!r}: empty element")
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError as exc:
            raise HalParseError(f"bad CPU list {text!r}: {part!r} is not a number or range") from exc
        if lo < 0 or hi < lo or hi - lo > 65536:
            raise HalParseError(f"bad CPU list {text!r}: bad range {part!r}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_cpu_list(cpus: set[int] | frozenset[int] | list[int]) -> str:
    """The inverse of parse_cpu_list: {0,1,2,5} -> '0-2,5'."""
    items = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Topology:
    """Which CPUs the kernel could have, has, and has online."""

    possible: list[int]
    present: list[int]
    online: list[int]


def read_list(probe: Probe, name: str) -> list[int] | None:
    """One topology file parsed, or None (recorded as missing) if absent or garbage."""
    text = probe.fs.read_text(f"{CPU_DIR}/{name}")
    if text is None:
        probe.miss(f"topology.{name}")
        return None
    try:
        return parse_cpu_list(text)
    except HalParseError:
        probe.miss(f"topology.{name}")
        return None


def read_topology(probe: Probe) -> Topology:
    """Read the topology, deriving what is missing from what is there (never raises)."""
    possible = read_list(probe, "possible")
    present = read_list(probe, "present")
    online = read_list(probe, "online")
    if present is None:
        present = possible if possible is not None else (online or [])
    if possible is None:
        possible = present
    if online is None:
        offline = read_list(probe, "offline")
        online = [c for c in present if offline is None or c not in offline]
    return Topology(possible=possible, present=present, online=online)


def static_core_ids(fs: Fs) -> list[int]:
    """The board's core ids: 'present' CPUs, else 'possible', else cpuN directories."""
    for name in ("present", "possible"):
        text = fs.read_text(f"{CPU_DIR}/{name}")
        if text:
            try:
                cpus = parse_cpu_list(text)
            except HalParseError:
                continue
            if cpus:
                return cpus
    ids = []
    for path in fs.glob(f"{CPU_DIR}/cpu[0-9]*"):
        suffix = path.rsplit("cpu", 1)[1]
        if suffix.isdigit():
            ids.append(int(suffix))
    return sorted(ids)
