"""Board health as flat housekeeping values: one number or word per key, for ``tm.housekeeping.board`` and ST[03]."""

from __future__ import annotations

from typing import Any

#: Kernel-log counters carried in housekeeping (hal.health kinds), by their housekeeping key.
KERNEL_LOG_KEYS = {
    "under_voltage": "under_voltage",
    "edac_ce": "edac_ce",
    "edac_ue": "edac_ue",
    "oops": "oops",
    "bug": "bug",
    "panic": "panic",
    "oom": "oom",
    "mmc_errors": "mmc_error",
    "fs_errors": "fs_error",
    "fs_read_only": "fs_read_only",
}
KEYS = (
    "ram_used_pct",
    "ram_available_mb",
    "swap_used_pct",
    "root_used_pct",
    "root_free_mb",
    "root_read_only",
    "state_used_pct",
    "state_free_mb",
    "state_read_only",
    "uptime_s",
    "reset_reason",
    "kernel_log",
    *KERNEL_LOG_KEYS,
    "emmc_level",
    "emmc_life_a",
    "emmc_life_b",
    "emmc_pre_eol",
    "clock_synchronised",
    "rtc_offset_s",
    "unavailable",
)
"""Every key of ``tm.housekeeping.board`` (a missing value is None; ``unavailable`` names the sources and why)."""
EMMC_ORDER = ("ok", "unknown", "warning", "urgent", "exceeded")
"""eMMC wear levels from best to worst: the worst card is the one reported."""


def flatten(health: dict[str, Any]) -> dict[str, Any]:
    """``tm.hal.health`` -> flat values; every source that could not be read is None and listed in ``unavailable``."""
    out: dict[str, Any] = dict.fromkeys(KEYS)
    gone: dict[str, str] = {}

    def take(name: str, section: Any) -> dict[str, Any] | None:
        if isinstance(section, dict) and section.get("available"):
            return section
        gone[name] = str(section.get("reason", "?")) if isinstance(section, dict) else "not read"
        return None

    if m := take("memory", health.get("memory")):
        out.update(ram_used_pct=m["used_pct"], ram_available_mb=m["available_mb"], swap_used_pct=m["swap_used_pct"])
    for i, d in enumerate(health.get("disks", [])):
        # An unreadable disk has no label of its own; its reason starts with it ("state: ...").
        if (disk := take(f"disk {d.get('label') or f'#{i}'}", d)) and disk["label"] in ("root", "state"):
            label = disk["label"]
            out.update(
                {
                    f"{label}_used_pct": disk["used_pct"],
                    f"{label}_free_mb": disk["free_mb"],
                    f"{label}_read_only": disk["read_only"],
                }
            )
    if b := take("boot", health.get("boot")):
        out.update(uptime_s=b["uptime_s"], reset_reason=b["reset_reason"])
    if k := take("kernel_log", health.get("kernel_log")):
        out["kernel_log"] = "ok"
        out.update({key: k["counts"].get(kind, 0) for key, kind in KERNEL_LOG_KEYS.items()})
    else:
        out["kernel_log"] = "unavailable"
    if (e := take("emmc", health.get("emmc"))) and e["cards"]:
        worst = max(e["cards"], key=lambda c: EMMC_ORDER.index(c["level"]) if c["level"] in EMMC_ORDER else 1)
        out.update(
            emmc_level=worst["level"],
            emmc_life_a=worst["life_time_a"],
            emmc_life_b=worst["life_time_b"],
            emmc_pre_eol=worst["pre_eol"],
        )
    if c := take("clock", health.get("clock")):
        out.update(clock_synchronised=c["synchronised"], rtc_offset_s=c["rtc_offset_s"])
    out["unavailable"] = gone
    return out
