"""Writes the simulator's state as a sysfs/procfs tree so the Linux readers parse it unchanged."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from hal.backends.linux.topology import format_cpu_list

USER_HZ = 100


@dataclass(frozen=True)
class TreeState:
    """What the tree shows: per-core jiffies and online state, temperatures, EDAC, power."""

    cores: int
    online: list[int]
    busy_jiffies: list[float]
    idle_jiffies: list[float]
    freq_khz: int
    junction_c: float
    radiator_c: float
    trip_passive_c: float
    trip_critical_c: float
    ce_count: int
    ue_count: int
    memory_mb: int
    rails_uw: dict[str, int]
    watchdog_timeout_s: int
    watchdog_max_s: int


class _Writer:
    """Writes only files whose content changed since the last render."""

    def __init__(self, cache: dict[str, str]) -> None:
        self.cache = cache

    def __call__(self, root: Path, rel: str, text: str) -> None:
        if self.cache.get(rel) == text:
            return
        path = root / rel
        if rel not in self.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # other readers never see a half-written file
        self.cache[rel] = text


def render(root: Path, s: TreeState, cache: dict[str, str] | None = None) -> None:
    """(Re)write the tree below root; ``cache`` (kept by the caller) skips unchanged files."""
    _write = _Writer(cache if cache is not None else {})
    cpu = "sys/devices/system/cpu"
    everything = format_cpu_list(list(range(s.cores)))
    _write(root, f"{cpu}/possible", everything + "\n")
    _write(root, f"{cpu}/present", everything + "\n")
    _write(root, f"{cpu}/online", format_cpu_list(s.online) + "\n")
    offline = [c for c in range(s.cores) if c not in s.online]
    _write(root, f"{cpu}/offline", format_cpu_list(offline) + "\n")
    for c in range(1, s.cores):
        _write(root, f"{cpu}/cpu{c}/online", "1\n" if c in s.online else "0\n")
    policy = f"{cpu}/cpufreq/policy0"
    _write(root, f"{policy}/related_cpus", " ".join(str(c) for c in range(s.cores)) + "\n")
    _write(root, f"{policy}/affected_cpus", " ".join(str(c) for c in s.online) + "\n")
    _write(root, f"{policy}/scaling_cur_freq", f"{s.freq_khz}\n")
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for c in s.online:
        lines.append(f"cpu{c} {int(s.busy_jiffies[c])} 0 0 {int(s.idle_jiffies[c])} 0 0 0 0 0 0")
    _write(root, "proc/stat", "\n".join(lines) + "\n")
    zone0 = "sys/class/thermal/thermal_zone0"
    _write(root, f"{zone0}/type", "cpu-thermal\n")
    _write(root, f"{zone0}/temp", f"{round(s.junction_c * 1000)}\n")
    _write(root, f"{zone0}/trip_point_0_type", "passive\n")
    _write(root, f"{zone0}/trip_point_0_temp", f"{round(s.trip_passive_c * 1000)}\n")
    _write(root, f"{zone0}/trip_point_1_type", "critical\n")
    _write(root, f"{zone0}/trip_point_1_temp", f"{round(s.trip_critical_c * 1000)}\n")
    zone1 = "sys/class/thermal/thermal_zone1"
    _write(root, f"{zone1}/type", "radiator\n")
    _write(root, f"{zone1}/temp", f"{round(s.radiator_c * 1000)}\n")
    mc = "sys/devices/system/edac/mc/mc0"
    _write(root, f"{mc}/ce_count", f"{s.ce_count}\n")
    _write(root, f"{mc}/ue_count", f"{s.ue_count}\n")
    _write(root, f"{mc}/size_mb", f"{s.memory_mb}\n")
    hw = "sys/class/hwmon/hwmon0"
    _write(root, f"{hw}/name", "simpower\n")
    for i, (label, uw) in enumerate(s.rails_uw.items(), start=1):
        _write(root, f"{hw}/power{i}_label", label + "\n")
        _write(root, f"{hw}/power{i}_input", f"{uw}\n")
    wd = "sys/class/watchdog/watchdog0"
    _write(root, f"{wd}/identity", "SimRadHard watchdog\n")
    _write(root, f"{wd}/timeout", f"{s.watchdog_timeout_s}\n")
    _write(root, f"{wd}/max_timeout", f"{s.watchdog_max_s}\n")
    _board_health_files(root, _write)


def _board_health_files(root: Path, write: _Writer) -> None:
    """What hal.health reads: a healthy eMMC, an RTC on the host's clock, and an (empty) kernel log."""
    card = "sys/class/mmc_host/mmc0/mmc0:0001"
    write(root, f"{card}/type", "MMC\n")
    write(root, f"{card}/name", "SIMMC\n")
    write(root, f"{card}/life_time", "0x01 0x01\n")
    write(root, f"{card}/pre_eol_info", "0x01\n")
    write(root, "sys/class/rtc/rtc0/name", "sim-rtc\n")
    write(root, "sys/class/rtc/rtc0/since_epoch", f"{int(time.time())}\n")
    kmsg = root / "dev" / "kmsg"
    if not kmsg.exists():  # appended to by tests and tools, never rewritten
        kmsg.parent.mkdir(parents=True, exist_ok=True)
        kmsg.touch()
