"""``flightos probe`` shows a board-health section: on a recorded Orin Nano tree, the live host and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hal
import hal.health
from hal.testing.trees import build_orin_nano, write

ORIN_CARD = "/sys/class/mmc_host/mmc0/mmc0:0001"
PMC = "/sys/devices/platform/bus@0/c360000.pmc"


def _orin_with_health(root: Path) -> Path:
    """An Orin Nano tree with the files board health reads: meminfo, uptime, eMMC, PMC reset reason, kmsg."""
    build_orin_nano(root)
    write(
        root,
        "/proc/meminfo",
        "MemTotal: 7802880 kB\nMemAvailable: 4070400 kB\nSwapTotal: 3901440 kB\nSwapFree: 3659776 kB\n",
    )
    write(root, "/proc/uptime", "86461.20 500000.00\n")
    write(root, f"{ORIN_CARD}/type", "MMC\n")
    write(root, f"{ORIN_CARD}/name", "DG4016\n")
    write(root, f"{ORIN_CARD}/life_time", "0x09 0x01\n")
    write(root, f"{ORIN_CARD}/pre_eol_info", "0x02\n")
    write(root, f"{PMC}/reset_reason", "SYS_RESET_N\n")
    write(
        root,
        "/dev/kmsg",
        "6,1,0,-;Booting Linux on physical CPU 0x0000000000 [0x410fd083]\n"
        "3,2,5000000,-;mmc0: Timeout waiting for hardware interrupt.\n",
    )
    return root


def test_probe_of_a_recorded_orin_shows_board_health(tmp_path: Path) -> None:
    """The section names the eMMC warning, the PMC reset reason and the MMC error; no live disks on a recording."""
    detection = hal.detect(str(_orin_with_health(tmp_path)))
    board = hal.open_board(detection.hal_config(), runner=lambda argv: (127, "", "not run"))
    try:
        report = hal.probe_report(board, settle_s=0, detection=detection)
    finally:
        board.close()
    text = "\n".join(report.lines())
    assert "memory: 47.8% used, 3975 of 7620 MiB available; swap 236 of 3810 MiB used" in text
    assert "disks: none measured (a recorded tree has no live file systems)" in text
    assert f"last reset: SYS_RESET_N ({PMC}/reset_reason)" in text
    assert "eMMC mmc0:0001 DG4016: warning; life used A 80-90%, B 0-10%; pre-EOL warning" in text
    assert "kernel log: mmc_error 1 (2 records read)" in text
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["board_health"]["emmc"]["cards"][0]["level"] == "warning"
    assert doc["board_health"]["boot"]["uptime_s"] == 86461.2


def test_probe_cli_json_has_board_health(tmp_path: Path) -> None:
    """``flightos probe --json`` carries ``board_health``, and measures the state directory asked for."""
    root = _orin_with_health(tmp_path / "tree")
    out = subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "probe", "--root", str(root), "--settle", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["board_health"]["kernel_log"]["counts"]["mmc_error"] == 1
    live = subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "probe", "--settle", "0", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"disk state {tmp_path}" in live.stdout and "board health:" in live.stdout


def test_the_reset_reason_uses_the_configured_watchdogs_bootstatus(tmp_path: Path) -> None:
    """hal.watchdog_device = /dev/watchdog1: its bootstatus (WDIOF_CARDRESET) is the last reset's reason."""
    root = build_orin_nano(tmp_path)
    write(root, "/proc/uptime", "61.0 100.0\n")
    write(root, "/sys/class/watchdog/watchdog1/bootstatus", "32\n")
    write(root, "/sys/class/watchdog/watchdog1/identity", "Tegra WDT\n")
    write(root, "/dev/watchdog1", "")
    board = hal.open_board(
        {"backend": "jetson", "root": str(root), "jetpack": "6", "watchdog_device": "/dev/watchdog1"},
        runner=lambda argv: (127, "", "not run"),
    )
    try:
        health = hal.health.read_health(hal.health.sources_for(board))
    finally:
        board.close()
    assert health.to_dict()["boot"]["reset_reason"].startswith("watchdog reset")
    assert health.to_dict()["boot"]["reset_source"] == "watchdog1 bootstatus"
