"""HealthWatch reads a whole board tree, raises an alert when something gets worse, and never fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hal.health import HealthSources, HealthWatch, read_health
from hal.health.storage import Statvfs
from hal.testing.trees import write

MEMINFO = "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.t = 1_765_100_000.0

    def __call__(self) -> float:
        return self.t


def _board(root: Path, *, pre_eol: str = "0x01", ro: bool = False) -> None:
    write(root, "/proc/meminfo", MEMINFO)
    write(root, "/proc/uptime", "3600.0 7000.0\n")
    write(root, "/proc/sys/kernel/random/boot_id", "0e0a6f2c-5d3a-4c52-9d7d-0d5e1c7e7a01\n")
    write(root, "/proc/mounts", f"/dev/mmcblk0p1 / ext4 {'ro' if ro else 'rw'},relatime 0 0\n")
    card = "/sys/class/mmc_host/mmc0/mmc0:0001"
    write(root, f"{card}/type", "MMC\n")
    write(root, f"{card}/life_time", "0x02 0x01\n")
    write(root, f"{card}/pre_eol_info", pre_eol + "\n")
    write(root, "/sys/class/rtc/rtc0/name", "tegra-rtc\n")
    write(root, "/sys/class/rtc/rtc0/since_epoch", "1765100000\n")
    write(root, "/dev/kmsg", "6,1,0,-;Booting Linux on physical CPU 0x0\n")


def _watch(root: Path, clock: Clock, state: Path) -> HealthWatch:
    return HealthWatch(
        HealthSources(sys_root=str(root), proc_root=str(root), disks={"root": "/", "state": str(state)}),
        adjtimex=lambda: (0, 0x2001, 2000),
        clock=clock,
        alert_interval_s=60.0,
    )


def test_a_healthy_board_reads_fully_and_raises_nothing(tmp_path: Path) -> None:
    """Every section is available; to_dict is JSON; the lines name each figure."""
    root, state = tmp_path / "board", tmp_path / "state"
    state.mkdir()
    _board(root)
    watch = _watch(root, Clock(), state)
    health, alerts = watch.poll()
    assert alerts == []
    doc = json.loads(json.dumps(health.to_dict()))
    assert doc["memory"] == {
        "available": True,
        "total_mb": 7812,
        "available_mb": 5859,
        "used_pct": 25.0,
        "swap_total_mb": 0,
        "swap_used_mb": 0,
        "swap_used_pct": None,
    }
    assert [d["label"] for d in doc["disks"]] == ["root", "state"]
    assert doc["boot"]["uptime_s"] == 3600.0 and doc["boot"]["reset_reason"] == "unknown"
    assert doc["emmc"]["cards"][0]["level"] == "ok"
    assert doc["clock"]["synchronised"] == "yes" and doc["clock"]["rtc_offset_s"] == 0.0
    assert doc["kernel_log"]["available"] and doc["kernel_log"]["records"] == 1
    text = "\n".join(health.lines())
    assert "memory: 25% used, 5859 of 7812 MiB available; swap none" in text
    assert "eMMC mmc0:0001 : ok; life used A 10-20%, B 0-10%; pre-EOL normal" in text
    assert "clock: synchronised yes" in text and "rtc: tegra-rtc offset +0 s" in text
    watch.close()


def test_under_voltage_alerts_once_per_interval_with_the_count(tmp_path: Path) -> None:
    """A storm of under-voltage lines is one alert, then one more a minute later carrying what came since."""
    root, state = tmp_path / "board", tmp_path / "state"
    state.mkdir()
    _board(root)
    clock = Clock()
    watch = _watch(root, clock, state)
    watch.poll()
    with (root / "dev/kmsg").open("a") as fh:
        fh.writelines(f"2,{n},{n * 1000000},-;hwmon hwmon1: Undervoltage detected!\n" for n in range(2, 12))
    _, alerts = watch.poll()
    assert [(a.kind, a.severity, a.data["count"]) for a in alerts] == [("under_voltage", "medium", 10)]
    with (root / "dev/kmsg").open("a") as fh:
        fh.write("2,12,12000000,-;hwmon hwmon1: Undervoltage detected!\n")
    clock.t += 30
    assert watch.poll()[1] == []
    clock.t += 31
    _, alerts = watch.poll()
    assert [(a.kind, a.data["count"], a.data["total"]) for a in alerts] == [("under_voltage", 1, 11)]
    assert "Undervoltage detected!" in alerts[0].message and alerts[0].data["line"].endswith("detected!")
    watch.close()


def test_read_only_remount_and_emmc_wear_raise_alerts(tmp_path: Path) -> None:
    """A remount ro (in the mount table and the kernel log) and a pre-EOL warning are each an alert."""
    root, state = tmp_path / "board", tmp_path / "state"
    state.mkdir()
    _board(root)
    watch = _watch(root, Clock(), state)
    watch.poll()
    _board(root, pre_eol="0x02", ro=True)
    write(
        root,
        "/dev/kmsg",
        "6,1,0,-;Booting Linux on physical CPU 0x0\n"
        "2,2,9000000,-;EXT4-fs (mmcblk0p1): Remounting filesystem read-only\n",
    )
    health, alerts = watch.poll()
    kinds = sorted((a.kind, a.severity) for a in alerts)
    assert ("emmc_wear", "medium") in kinds
    assert kinds.count(("read_only", "high")) >= 3  # kernel log, the root and state file systems, the mount table
    assert all(d["read_only"] for d in health.to_dict()["disks"])
    assert watch.poll()[1] == []  # still read-only, still warned: nothing new
    watch.close()


def test_state_dir_read_only_at_start_is_an_alert_root_is_not(tmp_path: Path) -> None:
    """A read-only root can be by design; a read-only state directory never is."""
    root, state = tmp_path / "board", tmp_path / "state"
    state.mkdir()
    _board(root, ro=True)
    _, alerts = _watch(root, Clock(), state).poll()
    assert [a.data.get("label") for a in alerts] == ["state"]


def test_an_empty_tree_is_all_unavailable_with_reasons(tmp_path: Path) -> None:
    """Nothing to read: every section says why, no exception, and the lines still render."""
    health = read_health(
        HealthSources(sys_root=str(tmp_path), proc_root=str(tmp_path), disks={"state": str(tmp_path / "missing")})
    )
    doc = health.to_dict()
    for key in ("memory", "boot", "emmc", "read_only_mounts"):
        assert doc[key]["available"] is False and doc[key]["reason"], key
    assert doc["disks"][0]["available"] is False
    assert doc["kernel_log"]["available"] is False and "dev/kmsg" in doc["kernel_log"]["reason"]
    text = "\n".join(health.lines())
    assert text.count("unavailable (") >= 6


def test_this_host_reads_without_error() -> None:
    """The live host: memory and the root file system are always there on Linux."""
    health = read_health(HealthSources(disks={"root": "/", "tmp": os.path.realpath("/tmp")}))
    doc = health.to_dict()
    assert doc["memory"]["available"] and doc["disks"][0]["available"]
    assert doc["boot"]["available"] and doc["boot"]["uptime_s"] > 0


def _statvfs_at(used_pct: list[float]) -> Statvfs:
    """A statvfs whose file system is ``used_pct[0]`` % full (1 GiB, 4 KiB blocks); change the list to refill it."""

    def fake(path: str) -> os.statvfs_result:
        blocks = 262144
        free = round(blocks * (100.0 - used_pct[0]) / 100.0)
        return os.statvfs_result((4096, 4096, blocks, free, free, 1000, 500, 500, 0, 255))

    return fake


def test_a_full_file_system_alerts_once_and_rearms_below_90_percent(tmp_path: Path) -> None:
    """95 % full is one alert (HIGH for the state directory); again only after it dropped below 90 %."""
    root, state = tmp_path / "board", tmp_path / "state"
    state.mkdir()
    _board(root)
    used = [50.0]
    watch = HealthWatch(
        HealthSources(sys_root=str(root), proc_root=str(root), disks={"state": str(state)}),
        adjtimex=lambda: (0, 0, 0),
        statvfs=_statvfs_at(used),
    )
    assert watch.poll()[1] == []
    used[0] = 96.0
    _, alerts = watch.poll()
    assert [(a.kind, a.severity, a.data["used_pct"], a.data["free_mb"]) for a in alerts] == [
        ("disk_full", "high", 96.0, 40)
    ]
    used[0] = 92.0
    assert watch.poll()[1] == []
    used[0] = 97.0
    assert watch.poll()[1] == []  # never dropped below 90 %: still the same episode
    used[0] = 80.0
    watch.poll()
    used[0] = 99.0
    assert [a.kind for a in watch.poll()[1]] == ["disk_full"]
