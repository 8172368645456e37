"""`flightos status` names the configured watchdog's last reset and nowayout, read from the board's sysfs."""

from __future__ import annotations

from pathlib import Path

from flightos.cli.status import render
from hal.testing.trees import build_generic, write
from tests.runtimes import make_runtime


async def test_status_shows_the_last_reset_of_the_configured_watchdog(tmp_path: Path) -> None:
    """A linux board whose watchdog1 (an iTCO) reset it last boot, opted in: the kernel warns that a PC chipset
    watchdog resets the machine, and status gives watchdog1's reset reason and nowayout (not watchdog0's)."""
    tree = build_generic(tmp_path / "tree")
    for n, (ident, status, nowayout) in enumerate([("ziirave_wdt", "0", "0"), ("iTCO_wdt", "32", "1")]):
        write(tree, f"/sys/class/watchdog/watchdog{n}/identity", ident + "\n")
        write(tree, f"/sys/class/watchdog/watchdog{n}/bootstatus", status + "\n")
        write(tree, f"/sys/class/watchdog/watchdog{n}/nowayout", nowayout + "\n")
    write(tree, "/dev/watchdog1", "")  # a plain file: opening works, its timeout ioctl fails (not armed)
    overrides = [f'hal.root="{tree}"', 'hal.watchdog_device="/dev/watchdog1"', "watchdog.enabled=true"]
    async with make_runtime(["test"], overrides, target="linux") as rt:
        status = await rt.status()
        wd = status["health"]["watchdog"]
        assert wd["armed"] is False and wd["nowayout"] is True and wd["bootstatus"] == 0x20
        assert wd["device"] == "/sys/class/watchdog/watchdog1"
        assert "watchdog off, resets 0, last reset: watchdog reset (WDIOF_CARDRESET), nowayout" in render(status)
        log = (rt.state_dir / "logs" / "kernel.log").read_text()
        assert "/dev/watchdog1 is a PC chipset watchdog (iTCO_wdt): it resets the whole machine" in log
