"""``HealthWatch``: reads board health on each ``poll()`` and says what got worse since the last (``Alert``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hal.fs import Fs
from hal.health.clock import AdjTimex, libc_adjtimex, read_clock
from hal.health.common import Unavailable
from hal.health.emmc import read_emmc
from hal.health.kmsg import KMSG, KmsgEvent, KmsgReader
from hal.health.memory import read_memory
from hal.health.report import BoardHealth
from hal.health.storage import Statvfs, read_disks, read_only_block_mounts
from hal.health.uptime import read_boot

#: Kernel-log kinds that raise an alert, with its kind and severity (``edac_ce`` and ``oom_cgroup``, a
#: service killed at its own memory limit, which the supervisor already reports, are only counted).
KMSG_ALERTS = {
    "under_voltage": ("under_voltage", "medium"),
    "fs_read_only": ("read_only", "high"),
    "panic": ("kernel_error", "high"),
    "oom": ("kernel_error", "high"),
    "oops": ("kernel_error", "high"),
    "bug": ("kernel_error", "high"),
    "edac_ue": ("kernel_error", "high"),
    "fs_error": ("kernel_error", "medium"),
    "mmc_error": ("kernel_error", "medium"),
}
EMMC_RANK = {"unknown": 0, "ok": 0, "warning": 1, "urgent": 2, "exceeded": 3}
FULL_PCT = 95.0
"""A measured file system this full raises ``disk_full``; it re-arms once below ``FULL_PCT - 5``."""


@dataclass(frozen=True)
class HealthSources:
    """Where to read: sysfs, device tree and the kernel log below ``sys_root``, /proc below ``proc_root``.

    ``disks`` maps a label to a live path whose file system is measured (none for a recorded tree).
    """

    sys_root: str = "/"
    proc_root: str = "/"
    disks: Mapping[str, str] = field(default_factory=lambda: {"root": "/"})
    kmsg: str | None = None
    watchdog: str = "watchdog0"
    bootstatus: int | None = None
    """The watchdog's bootstatus where the caller already read it (else read from sysfs)."""

    @property
    def kmsg_path(self) -> str:
        """The kernel log to read: ``kmsg`` if given, else ``<sys_root>/dev/kmsg``."""
        return self.kmsg or os.path.join(self.sys_root, KMSG.lstrip("/"))


@dataclass(frozen=True)
class Alert:
    """Something got worse: ``kind`` (under_voltage, read_only, disk_full, emmc_wear, kernel_error), how bad, why."""

    kind: str
    severity: str
    message: str
    data: dict[str, Any]


class HealthWatch:
    """Board health, read on demand; kernel-log counts and what was seen before persist between polls."""

    def __init__(
        self,
        sources: HealthSources,
        *,
        keep: int = 20,
        adjtimex: AdjTimex = libc_adjtimex,
        statvfs: Statvfs = os.statvfs,
        clock: Callable[[], float] = time.time,
        alert_interval_s: float = 60.0,
    ) -> None:
        self.sources = sources
        self.kmsg = KmsgReader(sources.kmsg_path, keep)
        self.last: BoardHealth | None = None
        self._sys = Fs(sources.sys_root)
        self._proc = Fs(sources.proc_root)
        self._adjtimex = adjtimex
        self._statvfs = statvfs
        self._clock = clock
        self._interval = alert_interval_s
        self._held: dict[str, list[KmsgEvent]] = {}
        self._said_at: dict[str, float] = {}
        self._ro_labels: set[str] = set()
        self._ro_mounts: set[str] | None = None
        self._emmc_rank: dict[str, int] = {}
        self._full: set[str] = set()

    def poll(self) -> tuple[BoardHealth, list[Alert]]:
        """Read every source once (never raises for a source that fails); the alerts since the last poll."""
        now = self._clock()
        events = self.kmsg.poll()
        disks, mounts = read_disks(self._proc, self.sources.disks, self._statvfs)
        ro_mounts = read_only_block_mounts(mounts) if isinstance(mounts, list) else mounts
        health = BoardHealth(
            t=round(now, 3),
            memory=read_memory(self._proc),
            disks=disks,
            read_only_mounts=ro_mounts,
            boot=read_boot(
                self._proc, self._sys, watchdog=self.sources.watchdog, bootstatus=self.sources.bootstatus, now=now
            ),
            kernel_log=self.kmsg.summary(),
            emmc=read_emmc(self._sys),
            clock=read_clock(self._sys, self._adjtimex, self._clock),
        )
        alerts = (
            self._kmsg_alerts(events, now)
            + self._read_only_alerts(health)
            + self._space_alerts(health)
            + self._emmc_alerts(health)
        )
        self.last = health
        return health, alerts

    def close(self) -> None:
        """Close the kernel log."""
        self.kmsg.close()

    def _kmsg_alerts(self, events: list[KmsgEvent], now: float) -> list[Alert]:
        """One alert per kind per ``alert_interval_s`` at most, with the count of what it stands for."""
        for e in events:
            if e.kind in KMSG_ALERTS:
                self._held.setdefault(e.kind, []).append(e)
        out = []
        for kind, held in list(self._held.items()):
            if not held or now - self._said_at.get(kind, -1e18) < self._interval:
                continue
            alert_kind, severity = KMSG_ALERTS[kind]
            last = held[-1]
            what = kind.replace("_", " ")
            out.append(
                Alert(
                    alert_kind,
                    severity,
                    f"kernel log: {len(held)} {what} report(s), the last at {last.t_boot_s:.1f} s after boot: "
                    f"{last.message}",
                    {
                        "log_kind": kind,
                        "count": len(held),
                        "total": self.kmsg.counts[kind],
                        "line": last.message,
                        "t_boot_s": last.t_boot_s,
                    },
                )
            )
            self._said_at[kind] = now
            self._held[kind] = []
        return out

    def _read_only_alerts(self, health: BoardHealth) -> list[Alert]:
        """A measured file system that went read-only (the state directory's: also when it starts so)."""
        out = []
        first = self.last is None
        for d in health.disks:
            if isinstance(d, Unavailable):
                continue
            if d.read_only and d.label not in self._ro_labels and (not first or d.label == "state"):
                out.append(
                    Alert(
                        "read_only",
                        "high",
                        f"the {d.label} file system ({d.path} on {d.device or '?'}) is mounted read-only",
                        {"label": d.label, "path": d.path, "device": d.device, "mount": d.mount},
                    )
                )
            if d.read_only:
                self._ro_labels.add(d.label)
            else:
                self._ro_labels.discard(d.label)
        if isinstance(health.read_only_mounts, list):
            now_ro = {f"{m.device} on {m.point}" for m in health.read_only_mounts}
            if self._ro_mounts is not None:
                out += [
                    Alert("read_only", "high", f"{m} was remounted read-only", {"mount": m})
                    for m in sorted(now_ro - self._ro_mounts)
                ]
            self._ro_mounts = now_ro
        return out

    def _space_alerts(self, health: BoardHealth) -> list[Alert]:
        """A measured file system at FULL_PCT or more (once, until it drops 5 points below)."""
        out = []
        for d in health.disks:
            if isinstance(d, Unavailable):
                continue
            if d.used_pct >= FULL_PCT and d.label not in self._full:
                self._full.add(d.label)
                out.append(
                    Alert(
                        "disk_full",
                        "high" if d.label == "state" else "medium",
                        f"the {d.label} file system ({d.path}) is {d.used_pct:g}% full, {d.free_mb} MiB free",
                        {"label": d.label, "path": d.path, "used_pct": d.used_pct, "free_mb": d.free_mb},
                    )
                )
            elif d.used_pct < FULL_PCT - 5:
                self._full.discard(d.label)
        return out

    def _emmc_alerts(self, health: BoardHealth) -> list[Alert]:
        """An eMMC card whose wear level rose (at the first poll: one that is not ``ok``)."""
        if isinstance(health.emmc, Unavailable):
            return []
        out = []
        for c in health.emmc:
            rank = EMMC_RANK.get(c.level, 0)
            if rank > self._emmc_rank.get(c.card, 0):
                out.append(
                    Alert(
                        "emmc_wear",
                        "high" if rank >= 2 else "medium",
                        f"eMMC {c.card} wear {c.level}: life used A {c.life_time_a or '?'}, "
                        f"B {c.life_time_b or '?'}, pre-EOL {c.pre_eol or '?'}",
                        {
                            "card": c.card,
                            "level": c.level,
                            "life_time_a": c.life_time_a,
                            "life_time_b": c.life_time_b,
                            "pre_eol": c.pre_eol,
                        },
                    )
                )
            self._emmc_rank[c.card] = rank
        return out


def read_health(sources: HealthSources, **kwargs: Any) -> BoardHealth:
    """One reading (the kernel log from its start), for ``flightos probe``."""
    watch = HealthWatch(sources, **kwargs)
    try:
        return watch.poll()[0]
    finally:
        watch.close()
