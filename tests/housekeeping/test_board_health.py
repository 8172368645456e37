"""Board health on a running simulated runtime: in `status`, as tm.housekeeping.board, and as kernel events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flightos.cli.status import board_health_lines, render
from flightos.testing.bus import Bus
from hal.health import HealthSources, read_health
from services.housekeeping.board import KEYS, flatten
from tests.runtimes import make_runtime


def test_flatten_names_every_unavailable_source() -> None:
    """An empty reading gives every key as None and says which sources were missing."""
    flat = flatten(
        {
            "memory": {"available": False, "reason": "/proc/meminfo unreadable"},
            "disks": [],
            "kernel_log": {"available": False, "reason": "/dev/kmsg: not permitted"},
        }
    )
    assert set(flat) == set(KEYS)
    assert flat["ram_used_pct"] is None and flat["kernel_log"] == "unavailable"
    assert flat["unavailable"]["memory"] == "/proc/meminfo unreadable"
    assert flat["unavailable"]["kernel_log"] == "/dev/kmsg: not permitted"


def test_status_lines_say_why_when_nothing_could_be_read(tmp_path: Path) -> None:
    """`flightos status` renders a board with no readable source as reasons, not a crash or blanks."""
    doc = read_health(
        HealthSources(sys_root=str(tmp_path), proc_root=str(tmp_path), disks={"state": str(tmp_path / "gone")})
    ).to_dict()
    lines = board_health_lines(doc)
    assert len(lines) == 3
    text = "\n".join(lines)
    assert "ram unavailable (/proc/meminfo unreadable)" in text
    assert "disk unavailable (state: " in text and "boot unavailable (" in text
    assert "kernel log unavailable (" in text and "eMMC unavailable (no MMC cards" in text
    assert board_health_lines(None) == ["board health: not read yet"]
    flat = flatten(doc)
    assert set(flat["unavailable"]) >= {"memory", "disk #0", "boot", "kernel_log", "emmc"}
    assert flat["unavailable"]["disk #0"].startswith("state: ") and flat["state_used_pct"] is None


async def test_board_health_reaches_status_housekeeping_and_events(tmp_path: Path) -> None:
    """The host's RAM and disks and the sim tree's eMMC and RTC show up; an under-voltage line in the board's
    kernel log and an eMMC pre-EOL warning become events and housekeeping values within one health period."""
    tree = tmp_path / "tree"
    async with make_runtime(["housekeeping"], [f'hal.root="{tree}"']) as rt:
        assert rt.client is not None
        bus = Bus(rt.client)
        first: dict[str, Any] = await bus.telemetry(
            "tm.housekeeping.board", timeout=20, what="board health as housekeeping"
        )
        assert 0 < first["ram_used_pct"] < 100 and first["ram_available_mb"] > 0
        assert first["root_free_mb"] > 0 and first["state_read_only"] is False
        assert first["emmc_level"] == "ok" and first["emmc_life_a"] == "0-10%"
        assert first["kernel_log"] == "ok" and first["under_voltage"] == 0
        assert first["clock_synchronised"] in ("yes", "no", "unknown") and abs(first["rtc_offset_s"]) <= 2
        assert first["uptime_s"] > 0

        status = await rt.status()
        board = status["board_health"]
        assert board["memory"]["available"] and board["emmc"]["cards"][0]["name"] == "SIMMC"
        text = render(status)
        assert "board: ram " in text and "eMMC mmc0:0001 ok" in text and "kernel log: nothing of note" in text

        with (tree / "dev/kmsg").open("a") as fh:
            fh.write("2,7,5140900,-;hwmon hwmon1: Undervoltage detected!\n")
        (tree / "sys/class/mmc_host/mmc0/mmc0:0001/pre_eol_info").write_text("0x02\n")
        seen: dict[str, dict[str, Any]] = {}

        def note(p: dict[str, Any]) -> bool:
            if p.get("name") in ("BOARD_UNDER_VOLTAGE", "EMMC_WEAR"):
                seen[p["name"]] = p
            return len(seen) == 2

        await bus.wait_for("ev.kernel", note, timeout=20, what="BOARD_UNDER_VOLTAGE and EMMC_WEAR")
        assert seen["BOARD_UNDER_VOLTAGE"]["data"]["count"] == 1
        assert "Undervoltage detected!" in seen["BOARD_UNDER_VOLTAGE"]["message"]
        assert seen["EMMC_WEAR"]["data"]["level"] == "warning" and seen["EMMC_WEAR"]["severity_name"] == "MEDIUM"
        later = await bus.telemetry(
            "tm.housekeeping.board", lambda p: p["under_voltage"] == 1 and p["emmc_level"] == "warning", timeout=10
        )
        assert later["emmc_pre_eol"] == "warning (80% of reserved blocks used)"
        assert await bus.call("housekeeping", "board") is not None
