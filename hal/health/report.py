"""One board-health snapshot (``BoardHealth``): plain dicts for JSON and telemetry, lines for people."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hal.health.clock import ClockState
from hal.health.common import Unavailable, section
from hal.health.emmc import EmmcWear
from hal.health.kmsg import KmsgSummary
from hal.health.memory import MemoryUse
from hal.health.storage import DiskUse, Mount
from hal.health.uptime import BootInfo


@dataclass(frozen=True)
class BoardHealth:
    """RAM, disks, read-only mounts, boot, kernel-log events, eMMC wear and clock, each read or said why not."""

    t: float
    memory: MemoryUse | Unavailable
    disks: list[DiskUse | Unavailable]
    read_only_mounts: list[Mount] | Unavailable
    boot: BootInfo | Unavailable
    kernel_log: KmsgSummary
    emmc: list[EmmcWear] | Unavailable
    clock: ClockState

    def to_dict(self) -> dict[str, Any]:
        """Nested dicts of str, int, float, bool and None (JSON- and msgpack-able)."""
        ro: dict[str, Any]
        if isinstance(self.read_only_mounts, Unavailable):
            ro = self.read_only_mounts.to_dict()
        else:
            ro = {"available": True, "mounts": [f"{m.device} on {m.point} ({m.fstype})" for m in self.read_only_mounts]}
        emmc: dict[str, Any]
        if isinstance(self.emmc, Unavailable):
            emmc = self.emmc.to_dict()
        else:
            emmc = {"available": True, "cards": [dataclasses.asdict(c) for c in self.emmc]}
        k = self.kernel_log
        return {
            "t": self.t,
            "memory": section(self.memory),
            "disks": [section(d) for d in self.disks],
            "read_only_mounts": ro,
            "boot": section(self.boot),
            "kernel_log": {
                "available": k.available,
                "reason": k.reason,
                "source": k.source,
                "counts": k.counts,
                "records": k.records,
                "overruns": k.overruns,
                "missed": k.missed,
                "last": [dataclasses.asdict(e) for e in k.last],
            },
            "emmc": emmc,
            "clock": section(self.clock),
        }

    def lines(self) -> list[str]:
        """A human-readable block, one line per item; every unavailable source says why."""
        out = ["board health:"]
        m = self.memory
        out.append(
            f"  memory: unavailable ({m.reason})"
            if isinstance(m, Unavailable)
            else f"  memory: {m.used_pct:g}% used, {m.available_mb} of {m.total_mb} MiB available; swap "
            + (f"{m.swap_used_mb} of {m.swap_total_mb} MiB used" if m.swap_total_mb else "none")
        )
        for d in self.disks:
            if isinstance(d, Unavailable):
                out.append(f"  disk: unavailable ({d.reason})")
            else:
                where = f" on {d.device} at {d.mount} ({d.fstype})" if d.mount else ""
                out.append(
                    f"  disk {d.label} {d.path}{where}: {d.used_pct:g}% used, {d.free_mb} MiB free"
                    + (", READ-ONLY" if d.read_only else "")
                )
        if not self.disks:
            out.append("  disks: none measured (a recorded tree has no live file systems)")
        ro = self.read_only_mounts
        if isinstance(ro, Unavailable):
            out.append(f"  read-only mounts: unavailable ({ro.reason})")
        elif ro:
            out.append("  read-only mounts: " + ", ".join(f"{x.device} on {x.point} ({x.fstype})" for x in ro))
        b = self.boot
        if isinstance(b, Unavailable):
            out.append(f"  boot: unavailable ({b.reason})")
        else:
            up = "?" if b.uptime_s is None else _duration(b.uptime_s)
            out.append(
                f"  boot: up {up}; last reset: {b.reset_reason} ({b.reset_source})"
                + (f"; boot id {b.boot_id}" if b.boot_id else "")
            )
        k = self.kernel_log
        if not k.available:
            out.append(f"  kernel log: unavailable ({k.reason})")
        else:
            seen = ", ".join(f"{kind} {n}" for kind, n in k.counts.items() if n) or "no events of note"
            out.append(
                f"  kernel log: {seen} ({k.records} records read"
                + (f", {k.overruns} overruns" if k.overruns else "")
                + ")"
            )
            out += [f"    [{e.t_boot_s:.1f}] {e.kind}: {e.message}" for e in k.last[-5:]]
        e = self.emmc
        if isinstance(e, Unavailable):
            out.append(f"  eMMC: unavailable ({e.reason})")
        else:
            out += [
                f"  eMMC {c.card} {c.name or ''}: {c.level}; life used A {c.life_time_a or '?'}, "
                f"B {c.life_time_b or '?'}; pre-EOL {c.pre_eol or '?'}"
                for c in e
            ]
        c = self.clock
        sync = f"  clock: synchronised {c.synchronised} ({c.sync_reason})"
        if c.max_error_ms is not None:
            sync += f", max error {c.max_error_ms:g} ms"
        out.append(sync)
        out.append(
            f"  rtc: {c.rtc} offset {c.rtc_offset_s:+g} s from the system clock"
            if c.rtc_offset_s is not None
            else f"  rtc: unavailable ({c.rtc_reason})"
        )
        return out


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"
