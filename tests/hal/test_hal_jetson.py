"""Jetson backend: tegrastats on every recorded line, Orin Nano and Nano trees, nvpmodel."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hal
from hal.backends.jetson.nvpmodel import parse_nvpmodel
from hal.backends.jetson.tegrastats import parse_line
from hal.backends.linux.board import LinuxBoard
from hal.testing.trees import (
    FIXTURES,
    NANO_OUTPUTS,
    ORIN_OUTPUTS,
    RecordedRunner,
    build_nano,
    build_orin_nano,
    build_xavier_nx,
    symlink,
    write,
)

SAMPLES = sorted(p.name for p in FIXTURES.glob("tegrastats_*.txt"))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_parses_completely(name: str) -> None:
    """Every recorded tegrastats line parses with nothing left over, RAM and CPUs present."""
    sample = parse_line((FIXTURES / name).read_text())
    assert sample.unparsed == []
    assert sample.ram_used_mb is not None and sample.ram_total_mb is not None
    assert sample.cpus and sample.gpu is not None
    assert sample.temps_c and sample.rails


def test_orin_nano_jp6_values() -> None:
    """Date prefix, GR3D_FREQ @[305], 'off' engines and mW rails come out right."""
    s = parse_line((FIXTURES / "tegrastats_orin_nano_jp6.txt").read_text())
    assert s.timestamp == "09-21-2025 15:38:17"
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb) == (3645, 7620, 236)
    assert [c.load_pct for c in s.cpus] == [1, 1, 4, 1, 0, 0]
    assert s.gpu is not None and s.gpu.freq_mhz == [305.0]
    assert s.engines["NVDEC"] is None and s.engines["APE"] == 200
    assert s.temps_c["tj"] == 44.531
    assert s.rails["VDD_IN"].cur_mw == 2957 and s.rails["VDD_SOC"].avg_mw == 1012


def test_offline_cores_missing_emc_and_powered_off_zones() -> None:
    """'off' cores, a line without EMC_FREQ, and -256C zones are understood."""
    off = parse_line((FIXTURES / "tegrastats_orin_2cores_off_jp5.txt").read_text())
    assert [c.online for c in off.cpus] == [True] * 4 + [False] * 2
    nonroot = parse_line((FIXTURES / "tegrastats_orin_nonroot.txt").read_text())
    assert nonroot.emc is None and nonroot.gpu is not None and nonroot.gpu.freq_mhz == []
    agx = parse_line((FIXTURES / "tegrastats_agx_orin_jp6.txt").read_text())
    assert agx.temps_c["CV0"] is None and agx.temps_c["CPU"] == 44.562
    assert "NC" not in agx.rails and agx.rails["VIN_SYS_5V0"].cur_mw == 4025
    assert agx.gpu is not None and agx.gpu.freq_mhz == [0.0, 0.0]
    nano = parse_line((FIXTURES / "tegrastats_nano_jp4.txt").read_text())
    assert nano.timestamp is None and nano.rails["POM_5V_IN"].avg_mw == 4680


def test_newer_formats() -> None:
    """Temperatures as x/yC and rails with three values parse."""
    s = parse_line("RAM 1/2MB CPU [1%@729,off] cpu@45.8C/45.8C VDD_IN 10mW/20mW/30mW")
    assert s.temps_c["cpu"] == 45.8
    assert s.rails["VDD_IN"].max_mw == 30.0


def test_garbage_lines_are_parse_errors() -> None:
    """Text that is not tegrastats raises HalParseError."""
    for bad in ("", "hello world", "RAM x/yMB", "CPU [abc]", "RAM 1/2MB CPU [1%@1"):
        with pytest.raises(hal.HalParseError):
            parse_line(bad)


@given(st.text(max_size=300))
def test_fuzz_tegrastats_with_garbage(text: str) -> None:
    """Arbitrary text yields a sample or HalParseError, nothing else."""
    try:
        parse_line(text)
    except hal.HalParseError:
        pass


_TOKENS = (FIXTURES / "tegrastats_agx_orin_jp6.txt").read_text().split() + (
    FIXTURES / "tegrastats_xavier_jtop_test.txt"
).read_text().split()


@given(st.lists(st.sampled_from([*_TOKENS, "off", "[", "]", "@", "%", "/", "(lfb"]), max_size=60))
def test_fuzz_tegrastats_token_soup(tokens: list[str]) -> None:
    """Shuffled real tokens yield a sample or HalParseError, nothing else."""
    try:
        parse_line(" ".join(tokens))
    except hal.HalParseError:
        pass


def test_nvpmodel() -> None:
    """nvpmodel -q output gives the mode name and id; garbage is a HalParseError."""
    assert parse_nvpmodel("NV Power Mode: 15W\n0\n") == ("15W", 0)
    assert parse_nvpmodel("NVPM WARN: fan mode\nNV Power Mode: MAXN_SUPER\n2\n") == ("MAXN_SUPER", 2)
    with pytest.raises(hal.HalParseError):
        parse_nvpmodel("nothing here")


def test_orin_nano_board(tmp_path: Path) -> None:
    """Orin Nano: two clusters (the offline one's policy answers EBUSY), no CV zones, INA3221 mW, GPU, mode."""
    board = hal.open_board(
        {"backend": "jetson", "root": str(build_orin_nano(tmp_path))},
        runner=RecordedRunner(ORIN_OUTPUTS),
    )
    assert board.identity.details["jetpack"] == "6"
    reading = board.read()
    # cpu4's cluster is its policy's number; cpu5's is unknown while the whole cluster is offline.
    assert [c.cluster for c in reading.cores] == [0, 0, 0, 0, 4, None]
    assert [c.online for c in reading.cores] == [True] * 4 + [False] * 2
    assert reading.cores[0].freq_mhz == 729.6 and reading.cores[4].freq_mhz is None
    assert "cpufreq.policy4.freq" not in reading.missing  # inactive, not broken
    cpu = reading.zone("cpu-thermal")
    assert cpu is not None and cpu.trip("passive") == 99.0 and cpu.trip("critical") == 104.5
    assert not any(z.name.startswith("cv") for z in reading.zones)  # the Orin Nano has no CV engines
    # The driver's sum channels (in7 shunt sum, curr4 current sum) are not rails.
    assert reading.rails_mw == pytest.approx({"VDD_IN": 2953.08, "VDD_CPU_GPU_CV": 483.072, "VDD_SOC": 1013.04})
    assert reading.extras["gpu_load_pct"] == 12.3 and reading.extras["gpu_freq_mhz"] == 305.0
    assert reading.extras["nvpmodel"] == "15W" and reading.extras["nvpmodel_id"] == 0
    assert board.can_offline(0)[0] is False
    ok, warning = board.can_offline(3)
    assert ok and "nvpmodel" in warning
    board.set_core_online(4, True)
    assert (tmp_path / "sys/devices/system/cpu/cpu4/online").read_text() == "1"


@pytest.mark.parametrize(("builder", "load", "mhz"), [
    (lambda p: build_orin_nano(p, jetpack=5), 12.3, 305.0),  # /sys/devices/platform/17000000.ga10b
    (lambda p: build_orin_nano(p, jetpack=6), 12.3, 305.0),  # /sys/devices/platform/bus@0/17000000.gpu
    (build_xavier_nx, 37.0, 1109.25),  # 17000000.gv11b
    (build_nano, 0.0, 76.8),  # 57000000.gpu
])  # fmt: skip
def test_gpu_found_through_devfreq_on_every_jetpack(tmp_path: Path, builder: Any, load: float, mhz: float) -> None:
    """The GPU is the devfreq device whose of_node is gpu/ga10b/gv11b/gp10b; its load is <device>/load."""
    board = hal.open_board({"backend": "jetson", "root": str(builder(tmp_path))}, runner=RecordedRunner({}))
    reading = board.read()
    assert (reading.extras["gpu_load_pct"], reading.extras["gpu_freq_mhz"]) == (load, mhz)
    assert "gpu" not in reading.missing


def test_jetpack5_gpu_is_not_under_bus0(tmp_path: Path) -> None:
    """The JetPack 5 tree has no platform/bus@0/17000000.ga10b (the path an older HAL guessed)."""
    build_orin_nano(tmp_path, jetpack=5)
    assert (tmp_path / "sys/devices/platform/17000000.ga10b/load").is_file()
    assert not (tmp_path / "sys/devices/platform/bus@0/17000000.ga10b").exists()


def test_other_devfreq_devices_are_not_the_gpu(tmp_path: Path) -> None:
    """A devfreq device with another node name (a memory controller) is skipped; none at all is 'gpu' missing."""
    write(tmp_path, "/sys/devices/platform/emc/of_node/name", "external-memory-controller\x00")
    write(tmp_path, "/sys/devices/platform/emc/load", "999\n")
    write(tmp_path, "/sys/devices/platform/emc/devfreq/emc/cur_freq", "1\n")
    symlink(tmp_path, "/sys/devices/platform/emc/devfreq/emc/device", "/sys/devices/platform/emc")
    symlink(tmp_path, "/sys/class/devfreq/emc", "/sys/devices/platform/emc/devfreq/emc")
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)}, runner=RecordedRunner({}))
    reading = board.read()
    assert reading.extras["gpu_load_pct"] is None and "gpu" in reading.missing


def test_soctherm_oc_events_are_throttle_flags(tmp_path: Path) -> None:
    """Orin: oc1 (under-voltage) and oc2/oc3 (over-current) counters; growth since the last read is 'now'."""
    build_orin_nano(tmp_path)
    oc = tmp_path / "sys/class/hwmon/hwmon3"
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)}, runner=RecordedRunner({}))
    first = board.read()
    assert first.throttle is not None and first.throttle.raw == 0
    assert first.extras["under_voltage_events"] == 0 and first.extras["over_current_inst_events"] == 0
    (oc / "oc3_event_cnt").write_text("37\n")  # instantaneous over-current, throttling enabled
    second = board.read()
    assert second.throttle is not None
    assert second.throttle.throttled and second.throttle.throttled_occurred and not second.throttle.under_voltage
    assert second.extras["over_current_inst_events"] == 37
    (oc / "oc1_event_cnt").write_text("2\n")
    third = board.read()
    assert third.throttle is not None and third.throttle.under_voltage and third.throttle.under_voltage_occurred
    assert not third.throttle.any_now or third.throttle.throttled  # oc1 throttles too (throt_en = 1)
    fourth = board.read()  # nothing new: not now, but it has occurred
    assert fourth.throttle is not None and not fourth.throttle.any_now
    assert fourth.throttle.under_voltage_occurred and fourth.throttle.throttled_occurred


def test_event_without_throttling_is_not_throttled(tmp_path: Path) -> None:
    """An over-current event whose ocN_throt_en is 0 counts, but does not mark the board throttled."""
    build_orin_nano(tmp_path)
    oc = tmp_path / "sys/class/hwmon/hwmon3"
    (oc / "oc2_throt_en").write_text("0\n")
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)}, runner=RecordedRunner({}))
    board.read()
    (oc / "oc2_event_cnt").write_text("5\n")
    reading = board.read()
    assert reading.throttle is not None and reading.throttle.raw == 0
    assert reading.extras["over_current_avg_events"] == 5


def test_nano_board(tmp_path: Path) -> None:
    """Nano (JetPack 4): PMIC-Die skipped, iio rails in mW, GPU through devfreq, MAXN mode, no throttle flags."""
    runner = RecordedRunner(NANO_OUTPUTS)
    board = hal.open_board({"backend": "jetson", "root": str(build_nano(tmp_path))}, runner=runner)
    reading = board.read()
    assert board.identity.details["jetpack"] == "4"
    assert "PMIC-Die" not in [z.name for z in reading.zones]
    assert len(reading.zones) == 5
    assert reading.rails_mw == {"POM_5V_IN": 4520.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 1078.0}
    assert reading.extras["gpu_load_pct"] == 0.0 and reading.extras["gpu_freq_mhz"] == 76.8
    assert reading.extras["nvpmodel"] == "MAXN" and reading.throttle is None
    assert runner.calls == [("nvpmodel", "-q")]  # no status file: the command, once


def test_power_mode_from_files_runs_no_command(tmp_path: Path) -> None:
    """With /var/lib/nvpmodel/status and /etc/nvpmodel.conf the mode is read, and nvpmodel never runs."""
    runner = RecordedRunner(ORIN_OUTPUTS)
    board = hal.open_board({"backend": "jetson", "root": str(build_orin_nano(tmp_path))}, runner=runner)
    (tmp_path / "var/lib/nvpmodel/status").write_text("pmode:0001 fmode:quiet\n")
    reading = board.read()
    assert (reading.extras["nvpmodel"], reading.extras["nvpmodel_id"]) == ("7W", 1)
    assert runner.calls == []


def test_hung_nvpmodel_never_blocks_a_read(tmp_path: Path) -> None:
    """A command that hangs costs the first read at most first_wait_s; later reads return at once, then its answer."""
    release = threading.Event()

    def hanging(argv: Sequence[str]) -> tuple[int, str, str]:
        release.wait(10)
        return 0, "NV Power Mode: 15W\n0\n", ""

    board = hal.open_board(
        {"backend": "jetson", "root": str(build_orin_nano(tmp_path, nvpmodel_files=False))}, runner=hanging
    )
    assert isinstance(board, LinuxBoard)
    board.commands.first_wait_s = 0.1
    t0 = time.monotonic()
    first = board.read()
    second = board.read()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, f"two reads took {elapsed:.2f} s while nvpmodel hung"
    assert first.extras["nvpmodel"] is None and "pending.nvpmodel" in second.missing
    release.set()
    assert board.commands.wait_idle(5.0)
    reading = board.read()
    assert reading.extras["nvpmodel"] == "15W" and "pending.nvpmodel" not in reading.missing
    age = reading.extras["nvpmodel_age_s"]
    assert isinstance(age, float) and 0.0 <= age < 5.0


def test_jetson_without_nvpmodel_or_rails(tmp_path: Path) -> None:
    """Missing nvpmodel and INA3221 give None/empty fields listed in missing, not a crash."""
    build_nano(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "sys/bus")
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)}, runner=RecordedRunner({}))
    reading = board.read()
    assert reading.rails_mw == {} and reading.extras["nvpmodel"] is None
    assert {"rails", "nvpmodel"} <= set(reading.missing)
