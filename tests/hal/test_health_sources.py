"""Board-health sources read trees shaped like real procfs/sysfs, and say why when a source is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hal.fs import Fs
from hal.health.clock import read_clock
from hal.health.common import Unavailable
from hal.health.emmc import life_range, read_emmc
from hal.health.memory import MemoryUse, read_memory
from hal.health.storage import DiskUse, mount_of, parse_mounts, read_disks, read_only_block_mounts
from hal.health.uptime import BootInfo, read_boot
from hal.testing.trees import write

# /proc/meminfo of a 4 GB Pi 4 (Bookworm), trimmed to the lines the reader uses and a few around them.
PI4_MEMINFO = """MemTotal:        3882384 kB
MemFree:         2817336 kB
MemAvailable:    3385736 kB
Buffers:           40108 kB
Cached:           630448 kB
SwapCached:            0 kB
SwapTotal:        102396 kB
SwapFree:          51198 kB
Hugepagesize:       2048 kB
"""

# A Pi's /proc/mounts with the root file system remounted read-only after ext4 errors.
PI_MOUNTS = r"""/dev/mmcblk0p2 / ext4 ro,noatime 0 0
devtmpfs /dev devtmpfs rw,relatime,size=1800000k,nr_inodes=450000,mode=755 0 0
proc /proc proc rw,relatime 0 0
/dev/mmcblk0p1 /boot/firmware vfat rw,relatime,fmask=0022,dmask=0022 0 0
/dev/sda1 /media/pi/my\040disk ext4 rw,nosuid,nodev,relatime 0 0
/dev/loop0 /snap/core/1 squashfs ro,nodev,relatime 0 0
"""


def test_memory_from_a_pi_meminfo(tmp_path: Path) -> None:
    """Used % comes from MemAvailable, swap from SwapTotal/SwapFree, all in MiB."""
    write(tmp_path, "/proc/meminfo", PI4_MEMINFO)
    mem = read_memory(Fs(tmp_path))
    assert isinstance(mem, MemoryUse)
    assert (mem.total_mb, mem.available_mb, mem.used_pct) == (3791, 3306, 12.8)
    assert (mem.swap_total_mb, mem.swap_used_mb, mem.swap_used_pct) == (99, 49, 50.0)


def test_memory_without_swap_and_without_memavailable(tmp_path: Path) -> None:
    """A kernel before 3.14 has no MemAvailable: free + buffers + cache; no swap is None, not 0 %."""
    write(tmp_path, "/proc/meminfo", "MemTotal: 1000 kB\nMemFree: 200 kB\nBuffers: 100 kB\nCached: 200 kB\n")
    mem = read_memory(Fs(tmp_path))
    assert isinstance(mem, MemoryUse)
    assert mem.used_pct == 50.0 and mem.swap_used_pct is None


def test_memory_unavailable_says_why(tmp_path: Path) -> None:
    """No meminfo, or one without MemTotal: unavailable with the file named."""
    assert read_memory(Fs(tmp_path)) == Unavailable("/proc/meminfo unreadable")
    write(tmp_path, "/proc/meminfo", "garbage\n")
    assert read_memory(Fs(tmp_path)) == Unavailable("/proc/meminfo has no MemTotal line")


def test_mounts_parse_escapes_and_find_the_longest_mount() -> None:
    """Octal escapes are undone; a path belongs to the deepest mount point above it."""
    mounts = parse_mounts(PI_MOUNTS)
    assert mounts[4].point == "/media/pi/my disk"
    m = mount_of("/media/pi/my disk/data", mounts)
    assert m is not None and m.device == "/dev/sda1"
    top = mount_of("/var/lib/flightos", mounts)
    assert top is not None and top.device == "/dev/mmcblk0p2"
    # Read-only by design (squashfs) is not listed; an ext4 mounted ro is.
    assert [x.device for x in read_only_block_mounts(mounts)] == ["/dev/mmcblk0p2"]


def test_disk_use_and_read_only_from_the_mount_table(tmp_path: Path) -> None:
    """statvfs gives the figures; the mount table's ro flag marks the file system read-only."""
    write(tmp_path, "/proc/mounts", PI_MOUNTS)
    state = tmp_path / "state"
    state.mkdir()
    disks, mounts = read_disks(Fs(tmp_path), {"root": "/", "state": str(state)})
    assert isinstance(mounts, list) and len(mounts) == 6
    root, st = disks
    assert isinstance(root, DiskUse) and isinstance(st, DiskUse)
    assert root.device == "/dev/mmcblk0p2" and root.read_only
    real = os.statvfs("/")
    assert root.total_mb == real.f_blocks * real.f_frsize // 2**20
    assert 0.0 <= st.used_pct <= 100.0


def test_disk_unavailable_when_the_path_is_gone(tmp_path: Path) -> None:
    """A state directory that does not exist is reported with the kernel's words, not a traceback."""
    disks, mounts = read_disks(Fs(tmp_path), {"state": str(tmp_path / "nope")})
    assert isinstance(mounts, Unavailable) and "proc/mounts" in mounts.reason
    assert isinstance(disks[0], Unavailable)
    assert disks[0].reason.startswith("state: ") and "No such file or directory" in disks[0].reason


def test_boot_watchdog_bootstatus_names_a_watchdog_reset(tmp_path: Path) -> None:
    """WDIOF_CARDRESET in bootstatus: the last reset was the watchdog's."""
    write(tmp_path, "/proc/uptime", "350735.47 234388.90\n")
    write(tmp_path, "/proc/sys/kernel/random/boot_id", "5b1f3a52-8f1e-4c1c-9d39-0c3c3f6a2d11\n")
    write(tmp_path, "/sys/class/watchdog/watchdog0/bootstatus", "32\n")
    boot = read_boot(Fs(tmp_path), Fs(tmp_path), now=1_000_000.0)
    assert isinstance(boot, BootInfo)
    assert boot.uptime_s == 350735.47 and boot.booted_at == round(1_000_000.0 - 350735.47, 1)
    assert boot.reset_reason.startswith("watchdog reset")
    assert boot.reset_source == "watchdog0 bootstatus"


def test_boot_tegra_pmc_reset_reason(tmp_path: Path) -> None:
    """An Orin's PMC names the reset source (drivers/soc/tegra/pmc.c ``reset_reason``, ``reset_level``)."""
    write(tmp_path, "/proc/uptime", "12.5 40.0\n")
    pmc = "/sys/devices/platform/bus@0/c360000.pmc"
    write(tmp_path, f"{pmc}/reset_reason", "SYS_RESET_N\n")
    write(tmp_path, f"{pmc}/reset_level", "L0\n")
    write(tmp_path, "/sys/class/watchdog/watchdog0/bootstatus", "0\n")
    boot = read_boot(Fs(tmp_path), Fs(tmp_path))
    assert isinstance(boot, BootInfo)
    assert boot.reset_reason == "SYS_RESET_N" and boot.reset_source == f"{pmc}/reset_reason"
    assert boot.evidence == {"watchdog_bootstatus": "0x0", "tegra_pmc_reset_reason": "SYS_RESET_N (L0)"}


def test_boot_reset_reason_unknown_is_said_honestly(tmp_path: Path) -> None:
    """No source: ``unknown`` and what was looked for; a Pi's PM_RSTS is kept as evidence, not guessed at."""
    write(tmp_path, "/proc/uptime", "100.0 300.0\n")
    (tmp_path / "proc/device-tree/chosen/bootloader").mkdir(parents=True)
    (tmp_path / "proc/device-tree/chosen/bootloader/rsts").write_bytes(bytes.fromhex("00001000"))
    boot = read_boot(Fs(tmp_path), Fs(tmp_path))
    assert isinstance(boot, BootInfo)
    assert boot.reset_reason == "unknown"
    assert "no /sys/class/watchdog/watchdog0/bootstatus" in boot.reset_source
    assert boot.evidence == {"pi_pm_rsts": "0x00001000"}
    assert read_boot(Fs(tmp_path / "empty"), Fs(tmp_path / "empty")) == Unavailable(
        "/proc/uptime and /proc/sys/kernel/random/boot_id unreadable"
    )


def _card(root: Path, host: str, card: str, kind: str, life: str | None = None, eol: str | None = None) -> None:
    base = f"/sys/class/mmc_host/{host}/{card}"
    write(root, f"{base}/type", kind + "\n")
    write(root, f"{base}/name", "DG4016\n")
    if life is not None:
        write(root, f"{base}/life_time", life + "\n")
    if eol is not None:
        write(root, f"{base}/pre_eol_info", eol + "\n")


@pytest.mark.parametrize(
    ("life", "eol", "level"),
    [
        ("0x01 0x01", "0x01", "ok"),
        ("0x02 0x09", "0x01", "warning"),
        ("0x01 0x01", "0x02", "warning"),
        ("0x03 0x02", "0x03", "urgent"),
        ("0x0a 0x01", "0x01", "urgent"),
        ("0x0b 0x02", "0x03", "exceeded"),
        ("0x00 0x00", "0x00", "unknown"),
    ],
)
def test_emmc_wear_levels(tmp_path: Path, life: str, eol: str, level: str) -> None:
    """life_time (two hex codes, type A and B) and pre_eol_info decide the level an operator acts on."""
    _card(tmp_path, "mmc0", "mmc0:0001", "MMC", life, eol)
    cards = read_emmc(Fs(tmp_path))
    assert isinstance(cards, list)
    assert cards[0].level == level and cards[0].card == "mmc0:0001" and cards[0].name == "DG4016"


def test_emmc_ranges_and_pre_eol_text(tmp_path: Path) -> None:
    """Codes map to the JEDEC ranges; pre-EOL 0x02 is the 80 % warning."""
    assert [life_range(c) for c in (0, 1, 2, 10, 11, 12)] == [None, "0-10%", "10-20%", "90-100%", "exceeded", None]
    _card(tmp_path, "mmc0", "mmc0:0001", "MMC", "0x02 0x03", "0x02")
    c = read_emmc(Fs(tmp_path))
    assert isinstance(c, list)
    assert (c[0].life_time_a, c[0].life_time_b) == ("10-20%", "20-30%")
    assert c[0].pre_eol == "warning (80% of reserved blocks used)"


def test_emmc_unavailable_on_sd_only_and_without_cards(tmp_path: Path) -> None:
    """A Pi booting from an SD card has no wear figures: said so, not a zero."""
    assert read_emmc(Fs(tmp_path)) == Unavailable("no MMC cards under /sys/class/mmc_host")
    _card(tmp_path, "mmc0", "mmc0:aaaa", "SD")
    assert read_emmc(Fs(tmp_path)) == Unavailable("no eMMC: the cards are SD (SD cards report no wear)")


def test_clock_synchronised_and_rtc_offset(tmp_path: Path) -> None:
    """adjtimex's state decides yes/no; the RTC's offset is since_epoch (mid-second) minus the system time, to 1 s."""
    write(tmp_path, "/sys/class/rtc/rtc0/name", "rtc-rpi rtc-rpi\n")
    write(tmp_path, "/sys/class/rtc/rtc0/since_epoch", "1765100000\n")
    synced = read_clock(Fs(tmp_path), lambda: (0, 0x2001, 16500), lambda: 1765100002.5)
    assert (synced.synchronised, synced.max_error_ms, synced.rtc_offset_s) == ("yes", 16.5, -2.0)
    unsynced = read_clock(Fs(tmp_path), lambda: (5, 0x0041, 16_000_000), lambda: 1765100000.0)
    assert unsynced.synchronised == "no" and "STA_UNSYNC" in unsynced.sync_reason
    assert unsynced.max_error_ms is None


def test_clock_unknown_and_no_rtc(tmp_path: Path) -> None:
    """No adjtimex and no rtc0: ``unknown`` and ``unavailable`` with the reasons."""

    def broken() -> tuple[int, int | None, int | None]:
        raise OSError(38, "Function not implemented")

    c = read_clock(Fs(tmp_path), broken)
    assert c.synchronised == "unknown" and "adjtimex unavailable" in c.sync_reason
    assert c.rtc is None and "no /sys/class/rtc/rtc0" in c.rtc_reason
    write(tmp_path, "/sys/class/rtc/rtc0/name", "tegra-rtc\n")
    unset = read_clock(Fs(tmp_path), broken)
    assert unset.rtc == "tegra-rtc" and "since_epoch unreadable" in unset.rtc_reason


def test_clock_on_this_host_never_raises() -> None:
    """The real adjtimex answers yes or no here (a Linux host), never a traceback."""
    c = read_clock(Fs("/"))
    assert c.synchronised in ("yes", "no", "unknown")
