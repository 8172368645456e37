"""RAM and swap use from ``/proc/meminfo`` (MemAvailable is the kernel's own estimate of usable RAM)."""

from __future__ import annotations

from dataclasses import dataclass

from hal.fs import Fs
from hal.health.common import Unavailable

MEMINFO = "/proc/meminfo"


@dataclass(frozen=True)
class MemoryUse:
    """RAM and swap in MiB; ``swap_used_pct`` is None when the board has no swap."""

    total_mb: int
    available_mb: int
    used_pct: float
    swap_total_mb: int
    swap_used_mb: int
    swap_used_pct: float | None


def parse_meminfo(text: str) -> dict[str, int]:
    """``'MemTotal:  3965 kB'`` lines -> {'MemTotal': 3965} (kB); lines that do not parse are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and fields and fields[0].isdigit():
            out[key.strip()] = int(fields[0])
    return out


def read_memory(proc: Fs) -> MemoryUse | Unavailable:
    """RAM and swap use of the board whose /proc is under ``proc``."""
    text = proc.read_text(MEMINFO)
    if text is None:
        return Unavailable(f"{MEMINFO} unreadable")
    info = parse_meminfo(text)
    total = info.get("MemTotal")
    if not total:
        return Unavailable(f"{MEMINFO} has no MemTotal line")
    # MemAvailable exists since Linux 3.14; before that free + buffers + cache is the usual estimate.
    avail = info.get("MemAvailable")
    if avail is None:
        avail = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
    swap_total = info.get("SwapTotal", 0)
    swap_used = max(0, swap_total - info.get("SwapFree", 0))
    return MemoryUse(
        total_mb=total // 1024,
        available_mb=avail // 1024,
        used_pct=round(100.0 * (total - avail) / total, 1),
        swap_total_mb=swap_total // 1024,
        swap_used_mb=swap_used // 1024,
        swap_used_pct=round(100.0 * swap_used / swap_total, 1) if swap_total else None,
    )
