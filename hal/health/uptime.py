"""Uptime, this boot's id and the last reset reason from the sources a board has (or ``unknown``, said so)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hal.fs import Fs
from hal.health.common import Unavailable

UPTIME = "/proc/uptime"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
WATCHDOG_SYSFS = "/sys/class/watchdog"
#: Tegra PMC's ``reset_reason`` (drivers/soc/tegra/pmc.c), under the PMC's platform device.
TEGRA_PMC_GLOBS = (
    "/sys/devices/platform/*.pmc/reset_reason",
    "/sys/devices/platform/bus@0/*.pmc/reset_reason",
    "/sys/devices/*.pmc/reset_reason",
)
#: The Pi 4/5 bootloader's copy of the PM_RSTS register (a big-endian u32 device-tree property).
PI_RSTS = "/proc/device-tree/chosen/bootloader/rsts"

#: Watchdog ``bootstatus`` bits (linux/watchdog.h WDIOF_*) that say why the last boot happened.
BOOTSTATUS_BITS = (
    (0x0020, "watchdog reset (the watchdog card reset the CPU)"),
    (0x0001, "overheat"),
    (0x0010, "power fault (under-voltage)"),
    (0x0040, "over-voltage"),
    (0x0002, "fan fault"),
    (0x0004, "external relay 1"),
    (0x0008, "external relay 2"),
)


@dataclass(frozen=True)
class BootInfo:
    """How long the board has been up, which boot this is, and why the last reset happened.

    ``reset_reason`` is ``unknown`` when no source said; ``reset_source`` names where it came from,
    or which sources were looked for.
    """

    uptime_s: float | None
    booted_at: float | None
    boot_id: str | None
    reset_reason: str
    reset_source: str
    evidence: dict[str, str] = field(default_factory=dict)


def decode_bootstatus(value: int) -> list[str]:
    """The reasons a watchdog's ``bootstatus`` holds; [] for 0 (a normal boot, as far as it knows)."""
    return [text for bit, text in BOOTSTATUS_BITS if value & bit]


def read_boot(
    proc: Fs, sys: Fs, *, watchdog: str = "watchdog0", bootstatus: int | None = None, now: float | None = None
) -> BootInfo | Unavailable:
    """Uptime and boot id from ``proc``; the reset reason from the watchdog, Tegra PMC or Pi bootloader in ``sys``.

    ``bootstatus`` is the watchdog's value where the caller already has it (else read from sysfs).
    """
    up_text = proc.read_text(UPTIME)
    uptime: float | None = None
    if up_text:
        try:
            uptime = float(up_text.split()[0])
        except ValueError:
            uptime = None
    boot_id = proc.read_text(BOOT_ID)
    if uptime is None and boot_id is None:
        return Unavailable(f"{UPTIME} and {BOOT_ID} unreadable")
    wall = time.time() if now is None else now
    evidence: dict[str, str] = {}
    reason, source = _reset_reason(sys, watchdog, bootstatus, evidence)
    return BootInfo(
        uptime_s=uptime,
        booted_at=round(wall - uptime, 1) if uptime is not None else None,
        boot_id=boot_id,
        reset_reason=reason,
        reset_source=source,
        evidence=evidence,
    )


def _reset_reason(sys: Fs, watchdog: str, bootstatus: int | None, evidence: dict[str, str]) -> tuple[str, str]:
    """(reason, source): the first source that names a reason; else ``unknown`` and what was looked for."""
    status_path = f"{WATCHDOG_SYSFS}/{watchdog}/bootstatus"
    status = bootstatus if bootstatus is not None else sys.read_int(status_path)
    if status is not None:
        evidence["watchdog_bootstatus"] = f"0x{status:x}"
        reasons = decode_bootstatus(status)
        if reasons:
            return ", ".join(reasons), f"{watchdog} bootstatus"
    for pattern in TEGRA_PMC_GLOBS:
        for path in sys.glob(pattern):
            text = sys.read_text(path)
            if text:
                level = sys.read_text(path.rsplit("/", 1)[0] + "/reset_level")
                evidence["tegra_pmc_reset_reason"] = text + (f" ({level})" if level else "")
                return text, path
    rsts = _pi_rsts(sys)
    if rsts is not None:
        # The PM_RSTS bits are not documented publicly: kept as evidence, not turned into a reason.
        evidence["pi_pm_rsts"] = f"0x{rsts:08x}"
    if status is not None:
        return "unknown", f"{watchdog} bootstatus is 0: no reset flagged (not every watchdog driver sets it)"
    looked = f"no {status_path}, no Tegra PMC reset_reason"
    looked += ", Pi PM_RSTS recorded but not decoded" if rsts is not None else ""
    return "unknown", looked


def _pi_rsts(sys: Fs) -> int | None:
    try:
        with open(sys.path(PI_RSTS), "rb") as fh:
            data = fh.read(8)
    except OSError:
        return None
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else None
