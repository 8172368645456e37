"""Generic Linux backend against a recorded tree: topology, load, cpufreq, thermal, EDAC."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

import hal
from hal.backends.linux.procstat import LoadTracker, parse_proc_stat
from hal.backends.linux.topology import format_cpu_list, parse_cpu_list
from hal.testing.trees import build_generic, proc_stat, write


def test_cpu_list_syntax_round_trips() -> None:
    """Kernel CPU lists like '0-3,5' parse and format the way sysfs writes them."""
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("") == []
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    for bad in ("a", "3-1", "1,,2", "-1"):
        with pytest.raises(hal.HalParseError):
            parse_cpu_list(bad)


def test_proc_stat_uses_labels_not_positions() -> None:
    """An offline cpu2 missing from /proc/stat does not shift cpu3's load onto cpu2."""
    tracker = LoadTracker()
    tracker.update(parse_proc_stat(proc_stat({0: (0, 0), 1: (0, 0), 3: (0, 0)})))
    loads = tracker.update(parse_proc_stat(proc_stat({0: (10, 90), 1: (50, 50), 3: (100, 0)})))
    assert loads == {0: 10.0, 1: 50.0, 3: 100.0}


def test_generic_board_reading(tmp_path: Path) -> None:
    """A read shows online/offline cores, per-cluster MHz, zones with trips, EDAC and rails."""
    board = hal.open_board({"backend": "linux", "root": str(build_generic(tmp_path))})
    assert board.identity.backend == "linux"
    assert board.identity.model == "Test Server"
    assert board.core_ids() == [0, 1, 2, 3]
    assert board.host_cpus(2) == frozenset({2})
    first = board.read()
    assert [c.online for c in first.cores] == [True, True, False, True]
    assert all(c.load_pct is None for c in first.cores)  # no previous sample yet
    assert first.cores[0].freq_mhz == 2400.0 and first.cores[0].cluster == 0
    assert first.cores[3].freq_mhz == 1800.0 and first.cores[3].cluster == 2
    assert first.cores[2].freq_mhz is None  # offline
    pkg = first.zone("x86_pkg_temp")
    assert pkg is not None and pkg.temp_c == 45.0 and pkg.trip("passive") == 95.0
    assert first.edac == hal.EdacCounts(corrected=4, uncorrected=1)
    assert first.rails_mw == {"PSU": 45250.0}
    assert first.throttle is None
    assert first.missing == []
    write(tmp_path, "/proc/stat", proc_stat({0: (200, 1800), 1: (1000, 1000), 3: (500, 1500)}))
    second = board.read()
    assert [c.load_pct for c in second.cores] == [10.0, 50.0, None, 50.0]


def test_reading_is_msgpackable(tmp_path: Path) -> None:
    """reading.to_dict() survives a msgpack round trip unchanged."""
    board = hal.open_board({"backend": "linux", "root": str(build_generic(tmp_path))})
    as_dict = board.read().to_dict()
    assert msgpack.unpackb(msgpack.packb(as_dict), strict_map_key=False) == as_dict


def test_empty_root_gives_nones_not_a_crash(tmp_path: Path) -> None:
    """A board with none of the files reads as empty/None fields, each listed in missing."""
    board = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    reading = board.read()
    assert reading.cores == [] and reading.zones == [] and reading.edac is None
    assert "proc_stat" in reading.missing and "cpufreq" in reading.missing


def test_garbage_values_are_missing(tmp_path: Path) -> None:
    """Garbage in sysfs files yields None for that field and names it in missing."""
    build_generic(tmp_path)
    write(tmp_path, "/sys/devices/system/cpu/online", "zero-three\n")
    write(tmp_path, "/sys/class/thermal/thermal_zone0/temp", "hot\n")
    write(tmp_path, "/sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "\x00\xff")
    write(tmp_path, "/sys/devices/system/edac/mc/mc1/ue_count", "")
    write(tmp_path, "/proc/stat", "cpu0 x y z\ncpu1\n\x00garbage")
    reading = hal.open_board({"backend": "linux", "root": str(tmp_path)}).read()
    zone = reading.zone("x86_pkg_temp")
    assert zone is not None and zone.temp_c is None
    assert reading.cores[0].freq_mhz is None
    assert reading.edac is None
    for name in ("topology.online", "zone.x86_pkg_temp.temp", "cpufreq.policy0.freq"):
        assert name in reading.missing
    assert "edac.mc1.ue_count" in reading.missing


def test_edac_absent_is_none_without_complaint(tmp_path: Path) -> None:
    """A board without an EDAC controller reports edac=None and does not list it missing."""
    reading = hal.open_board({"backend": "linux", "root": str(build_generic(tmp_path, edac=False))}).read()
    assert reading.edac is None and not any(m.startswith("edac") for m in reading.missing)


def test_hotplug_writes_online_file(tmp_path: Path) -> None:
    """set_core_online writes cpuN/online; cores without the file cannot be offlined."""
    build_generic(tmp_path)
    board = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    ok, reason = board.can_offline(0)
    assert not ok and "cpu0" in reason
    with pytest.raises(hal.HalUnsupported, match="cpu0"):
        board.set_core_online(0, False)
    board.set_core_online(1, False)
    assert (tmp_path / "sys/devices/system/cpu/cpu1/online").read_text() == "0"
    with pytest.raises(hal.HalError, match="no core 9"):
        board.can_offline(9)
