"""Per-core load from the labelled ``cpuN`` lines of /proc/stat (offline cores simply vanish)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative busy and total jiffies of one CPU."""

    busy: int
    total: int


def parse_proc_stat(text: str) -> dict[int, CpuTimes]:
    """Map CPU number -> times from /proc/stat, by label; malformed lines are skipped."""
    out: dict[int, CpuTimes] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        fields = line.split()
        label = fields[0][3:]
        if not label.isdigit() or len(fields) < 5:
            continue
        try:
            values = [int(v) for v in fields[1:9]]
        except ValueError:
            continue
        if any(v < 0 for v in values):
            continue
        # user nice system idle iowait irq softirq steal (guest is already inside user).
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        out[int(label)] = CpuTimes(busy=total - idle, total=total)
    return out


class LoadTracker:
    """Keeps the previous /proc/stat sample and turns the next one into per-core load %."""

    def __init__(self) -> None:
        self._prev: dict[int, CpuTimes] = {}

    def update(self, sample: dict[int, CpuTimes]) -> dict[int, float | None]:
        """Load % per CPU since the previous sample; None on the first sample or a reset."""
        loads: dict[int, float | None] = {}
        for cpu, now in sample.items():
            before = self._prev.get(cpu)
            if before is None:
                loads[cpu] = None
                continue
            d_total = now.total - before.total
            d_busy = now.busy - before.busy
            if d_total <= 0 or d_busy < 0:
                loads[cpu] = None
            else:
                loads[cpu] = max(0.0, min(100.0, 100.0 * d_busy / d_total))
        self._prev = dict(sample)
        return loads
