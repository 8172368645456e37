"""The device watchdog: timeout limits, petting, the magic close, and what sysfs says about it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import hal
from hal.fs import Fs
from hal.testing.trees import build_generic, write
from hal.watchdog import (
    WDIOC_SETTIMEOUT,
    DeviceWatchdog,
    check_periods,
    device_node,
    pc_chipset_warning,
    read_info,
    reset_reason,
)


def test_open_pet_magic_close(tmp_path: Path) -> None:
    """open sets the timeout by ioctl, pet writes to the device, close writes 'V' to disarm."""
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    calls: list[tuple[int, int]] = []

    def ioctl(fd: int, request: int, arg: bytes) -> bytes:
        calls.append((request, struct.unpack("i", arg)[0]))
        return arg

    wd = DeviceWatchdog(str(dev), max_timeout_s=15, ioctl=ioctl)
    with wd:
        wd.open(10)
        assert wd.is_open and wd.timeout_s == 10.0
        wd.pet()
        wd.pet()
    assert not wd.is_open
    assert calls == [(WDIOC_SETTIMEOUT, 10)]
    assert dev.read_bytes() == b"\0\0V"


def test_timeout_above_max_is_refused(tmp_path: Path) -> None:
    """Asking a 15 s watchdog (bcm2835) for 20 s fails before touching the device."""
    wd = DeviceWatchdog(str(tmp_path / "absent"), max_timeout_s=15)
    with pytest.raises(hal.HalError, match="maximum of 15 s"):
        wd.open(20)
    with pytest.raises(hal.HalError, match="cannot open"):
        wd.open(5)
    with pytest.raises(hal.HalError, match="not open"):
        wd.pet()


def _pc_with_two_watchdogs(root: Path) -> Path:
    """A PC tree: watchdog0 is the iTCO chipset watchdog, watchdog1 a board controller that last reset the box."""
    build_generic(root)
    write(root, "/sys/class/watchdog/watchdog0/identity", "iTCO_wdt\n")
    write(root, "/sys/class/watchdog/watchdog0/timeout", "30\n")
    write(root, "/sys/class/watchdog/watchdog0/max_timeout", "613\n")
    write(root, "/sys/class/watchdog/watchdog0/nowayout", "0\n")
    write(root, "/sys/class/watchdog/watchdog0/bootstatus", "0\n")
    write(root, "/sys/class/watchdog/watchdog1/identity", "ziirave_wdt\n")
    write(root, "/sys/class/watchdog/watchdog1/timeout", "8\n")
    write(root, "/sys/class/watchdog/watchdog1/max_timeout", "255\n")
    write(root, "/sys/class/watchdog/watchdog1/nowayout", "1\n")
    write(root, "/sys/class/watchdog/watchdog1/bootstatus", "32\n")
    write(root, "/dev/watchdog", "")
    write(root, "/dev/watchdog0", "")
    write(root, "/dev/watchdog1", "")
    return root


def test_sysfs_is_read_for_the_configured_device_not_watchdog0(tmp_path: Path) -> None:
    """/dev/watchdog1 is described by watchdog1's sysfs: nowayout, and the last reset was the watchdog's."""
    fs = Fs(_pc_with_two_watchdogs(tmp_path))
    info = read_info(fs, "/dev/watchdog1")
    assert info is not None and info.identity == "ziirave_wdt" and info.max_timeout_s == 255.0
    assert info.nowayout is True and info.bootstatus == 0x20
    assert info.reset_reason == "watchdog reset (WDIOF_CARDRESET)"
    legacy = read_info(fs, "/dev/watchdog")  # the legacy node opens the first watchdog
    assert legacy is not None and legacy.identity == "iTCO_wdt" and legacy.nowayout is False
    assert legacy.reset_reason == "normal boot (no watchdog reset recorded)"
    assert reset_reason(0x30) == "watchdog reset (WDIOF_CARDRESET), power under-voltage (WDIOF_POWERUNDER)"
    assert read_info(fs, "/dev/watchdog7") is None
    assert device_node(info.device) == "/dev/watchdog1"


def test_probe_shows_nowayout_last_reset_and_warns_for_a_pc_chipset_watchdog(tmp_path: Path) -> None:
    """`flightos probe` names the configured device's reset reason, and warns that iTCO resets the machine."""
    root = _pc_with_two_watchdogs(tmp_path)
    board = hal.open_board({"backend": "linux", "root": str(root), "watchdog_device": "/dev/watchdog1"})
    report = hal.probe_report(board, settle_s=0, cpuset_root=str(root))
    text = "\n".join(report.lines())
    assert "watchdog: /dev/watchdog1 identity ziirave_wdt timeout 8 s max 255 s nowayout yes" in text
    assert "last reset: watchdog reset (WDIOF_CARDRESET) (bootstatus 0x20)" in text
    assert "WARNING" not in text and board.identity.watchdog_max_s == 255.0
    assert report.to_dict()["watchdog"]["bootstatus"] == 0x20

    board = hal.open_board({"backend": "linux", "root": str(root)})
    text = "\n".join(hal.probe_report(board, settle_s=0, cpuset_root=str(root)).lines())
    assert "WARNING: /dev/watchdog is a PC chipset watchdog (iTCO_wdt): it resets the whole machine" in text


def test_periods_are_checked_against_each_other_and_the_device_maximum() -> None:
    """pet_period_s < timeout_s <= max_timeout; each failure names the key and the limit."""
    assert check_periods(10, 5, 15) is None and check_periods(10, 5, None) is None
    assert check_periods(20, 5, 15) == (
        "watchdog.timeout_s: expected at most this watchdog's maximum of 15 s (max_timeout in sysfs), got 20"
    )
    assert check_periods(10, 10, 15) == "watchdog.pet_period_s: expected less than watchdog.timeout_s (10 s), got 10"
    assert pc_chipset_warning("SP5100 TCO timer", "/dev/watchdog0") is not None
    assert pc_chipset_warning("Broadcom BCM2835 Watchdog timer", "/dev/watchdog") is None
