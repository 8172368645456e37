"""Jetson backend: tegrastats on every recorded line, Orin Nano and Nano trees, nvpmodel."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hal
from hal.backends.jetson.nvpmodel import parse_nvpmodel
from hal.backends.jetson.tegrastats import parse_line
from hal.testing.trees import (
    FIXTURES,
    NANO_OUTPUTS,
    ORIN_OUTPUTS,
    RecordedRunner,
    build_nano,
    build_orin_nano,
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
    """Orin Nano: two clusters, offline cores, CV zones off, INA3221 mW, GPU load and mode."""
    board = hal.open_board(
        {"backend": "jetson", "root": str(build_orin_nano(tmp_path))},
        runner=RecordedRunner(ORIN_OUTPUTS),
    )
    assert board.identity.details["jetpack"] == "6"
    reading = board.read()
    assert [c.cluster for c in reading.cores] == [0, 0, 0, 0, 4, 4]
    assert [c.online for c in reading.cores] == [True] * 4 + [False] * 2
    assert reading.cores[0].freq_mhz == 729.6 and reading.cores[5].freq_mhz is None
    cpu = reading.zone("cpu-thermal")
    assert cpu is not None and cpu.trip("passive") == 99.0 and cpu.trip("critical") == 104.5
    cv0, cv1 = reading.zone("cv0-thermal"), reading.zone("cv1-thermal")
    assert cv0 is not None and cv0.temp_c is None and cv1 is not None and cv1.temp_c is None
    assert reading.rails_mw == pytest.approx({"VDD_IN": 2953.08, "VDD_CPU_GPU_CV": 483.072, "VDD_SOC": 1013.04})
    assert reading.extras["gpu_load_pct"] == 12.3 and reading.extras["gpu_freq_mhz"] == 305.0
    assert reading.extras["nvpmodel"] == "15W" and reading.extras["nvpmodel_id"] == 0
    assert board.can_offline(0)[0] is False
    ok, warning = board.can_offline(3)
    assert ok and "nvpmodel" in warning
    board.set_core_online(4, True)
    assert (tmp_path / "sys/devices/system/cpu/cpu4/online").read_text() == "1"


def test_orin_jetpack5_gpu_path(tmp_path: Path) -> None:
    """On JetPack 5 the GPU is read from 17000000.ga10b."""
    board = hal.open_board(
        {"backend": "jetson", "root": str(build_orin_nano(tmp_path, jetpack=5))},
        runner=RecordedRunner(ORIN_OUTPUTS),
    )
    assert board.identity.details["jetpack"] == "5"
    assert board.read().extras["gpu_freq_mhz"] == 305.0


def test_nano_board(tmp_path: Path) -> None:
    """Nano (JetPack 4): PMIC-Die skipped, iio rails in mW, gpu.0 load, MAXN mode."""
    board = hal.open_board(
        {"backend": "jetson", "root": str(build_nano(tmp_path))},
        runner=RecordedRunner(NANO_OUTPUTS),
    )
    reading = board.read()
    assert board.identity.details["jetpack"] == "4"
    assert "PMIC-Die" not in [z.name for z in reading.zones]
    assert len(reading.zones) == 5
    assert reading.rails_mw == {"POM_5V_IN": 4520.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 1078.0}
    assert reading.extras["gpu_load_pct"] == 0.0 and reading.extras["gpu_freq_mhz"] == 76.8
    assert reading.extras["nvpmodel"] == "MAXN"


def test_jetson_without_nvpmodel_or_rails(tmp_path: Path) -> None:
    """Missing nvpmodel and INA3221 give None/empty fields listed in missing, not a crash."""
    build_nano(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "sys/bus")
    board = hal.open_board({"backend": "jetson", "root": str(tmp_path)}, runner=RecordedRunner({}))
    reading = board.read()
    assert reading.rails_mw == {} and reading.extras["nvpmodel"] is None
    assert {"rails", "nvpmodel"} <= set(reading.missing)
