"""Raspberry Pi backend: vcgencmd parsers on the recorded samples, Pi 4 and Pi 5 trees."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hal
from hal.backends.rpi import RpiBoard
from hal.backends.rpi.throttle import parse_sysfs_throttled
from hal.backends.rpi.vcgencmd import (
    parse_measure_temp,
    parse_measure_volts,
    parse_pmic_read_adc,
    parse_throttled,
)
from hal.testing.trees import (
    PI_OUTPUTS_PI4,
    PI_OUTPUTS_PI5,
    RecordedRunner,
    build_pi4,
    build_pi5,
    fixture,
    write,
)


def _vcgencmd_samples() -> list[tuple[str, str]]:
    """(command, output) pairs from pi_vcgencmd.txt."""
    pairs: list[tuple[str, str]] = []
    command = ""
    for line in fixture("pi_vcgencmd.txt").splitlines():
        if line.startswith("$ "):
            command = re.sub(r"\s+#.*$", "", line[2:]).strip()
        elif line.strip():
            pairs.append((command, line + "\n"))
    return pairs


def test_every_throttled_sample_decodes() -> None:
    """Each recorded get_throttled value decodes into its current and sticky flags."""
    values = [parse_throttled(out) for cmd, out in _vcgencmd_samples() if "get_throttled" in cmd]
    assert [v.raw for v in values] == [0x0, 0x50005, 0x50000, 0xA0002]
    none, now, sticky, capped = values
    assert not none.any_now and not none.under_voltage_occurred
    assert now.under_voltage and now.throttled and not now.freq_capped
    assert now.under_voltage_occurred and now.throttled_occurred
    assert not sticky.any_now and sticky.under_voltage_occurred and sticky.throttled_occurred
    assert capped.freq_capped and capped.freq_capped_occurred and capped.soft_temp_limit_occurred


def test_temp_volts_and_pi4_pmic_error_samples() -> None:
    """measure_temp/measure_volts give numbers; the Pi 4's pmic error gives no rails."""
    samples = dict(_vcgencmd_samples())
    assert parse_measure_temp(samples["vcgencmd measure_temp"]) == 39.5
    assert parse_measure_volts(samples["vcgencmd measure_volts uncached"]) == 0.72
    pi4 = parse_pmic_read_adc(samples["vcgencmd pmic_read_adc"])
    assert pi4.rails_mw == {} and pi4.error == "Command not registered"


def test_pi5_pmic_rails() -> None:
    """Pi 5 rails are current x matching volt in mW; EXT5V (voltage only) is not a rail."""
    pmic = parse_pmic_read_adc(fixture("pi5_pmic_read_adc.txt"))
    assert len(pmic.currents_a) == 12 and len(pmic.volts_v) == 14
    rails = pmic.rails_mw
    assert rails["VDD_CORE"] == pytest.approx(5.03652 * 0.8936988 * 1000)
    assert "EXT5V" not in rails and "BATT" not in rails
    assert set(rails) == set(pmic.currents_a)


@pytest.mark.parametrize("parser", [parse_throttled, parse_measure_temp, parse_measure_volts])
def test_garbage_is_a_parse_error(parser: object) -> None:
    """Unexpected vcgencmd output raises HalParseError."""
    for bad in ("", "throttled=", "temp=hot'C", "volt=1V\nvolt=2V", "error=1"):
        with pytest.raises(hal.HalParseError):
            parser(bad)  # type: ignore[operator]


@given(st.text(max_size=200))
def test_fuzz_vcgencmd_parsers(text: str) -> None:
    """Any text gives a result or HalParseError from every vcgencmd parser, nothing else."""
    for parser in (parse_throttled, parse_measure_temp, parse_measure_volts, parse_pmic_read_adc):
        try:
            parser(text)
        except hal.HalParseError:
            pass


@given(st.lists(st.sampled_from(fixture("pi5_pmic_read_adc.txt").splitlines()), max_size=30))
def test_fuzz_pmic_line_mixes(lines: list[str]) -> None:
    """Any subset/order of real PMIC lines parses, and every rail has a current and a voltage."""
    try:
        pmic = parse_pmic_read_adc("\n".join(lines))
    except hal.HalParseError:
        assert not lines
        return
    assert set(pmic.rails_mw) <= set(pmic.currents_a) & set(pmic.volts_v)


def test_pi4_board(tmp_path: Path) -> None:
    """A Pi 4 reads temp, trips, one cluster, throttle flags from sysfs; it has no rails and no hotplug."""
    runner = RecordedRunner(PI_OUTPUTS_PI4)
    board = hal.open_board({"backend": "rpi", "root": str(build_pi4(tmp_path))}, runner=runner)
    assert board.identity.details["generation"] == "pi4" and not board.identity.hotplug
    reading = board.read()
    zone = reading.zone("cpu-thermal")
    assert zone is not None and zone.temp_c == 39.5 and zone.trip("critical") == 110.0
    assert {c.freq_mhz for c in reading.cores} == {1500.0}
    assert {c.cluster for c in reading.cores} == {0}
    assert reading.throttle is not None and reading.throttle.raw == 0
    assert reading.extras["throttle_source"] == "sysfs get_throttled"
    assert reading.rails_mw == {}
    assert reading.extras["vc_temp_c"] == 39.5 and reading.extras["core_volts"] == 0.72
    assert ("vcgencmd", "pmic_read_adc") not in runner.calls
    assert ("vcgencmd", "get_throttled") not in runner.calls  # sysfs has it
    ok, reason = board.can_offline(2)
    assert not ok and "no CPU hotplug" in reason
    with pytest.raises(hal.HalUnsupported, match="Raspberry Pi 4"):
        board.set_core_online(2, False)
    assert board.identity.watchdog_max_s == 15.0
    with pytest.raises(hal.HalError, match="maximum of 15 s"):
        board.watchdog().open(20)


def test_sysfs_get_throttled_is_hex_without_prefix(tmp_path: Path) -> None:
    """The firmware driver prints '%x': '50005' is under-voltage and throttled, now and since the last poll."""
    build_pi4(tmp_path)
    write(tmp_path, "/sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    reading = hal.open_board({"backend": "rpi", "root": str(tmp_path)}, runner=RecordedRunner({})).read()
    assert reading.throttle is not None and reading.throttle.raw == 0x50005
    assert parse_sysfs_throttled("a0002").freq_capped
    pi5 = build_pi5(tmp_path / "pi5")  # a Pi 5 kernel that still has the file: under its own firmware node
    write(pi5, "/sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled", "50000\n")
    runner = RecordedRunner(PI_OUTPUTS_PI5)
    on_pi5 = hal.open_board({"backend": "rpi", "root": str(pi5)}, runner=runner).read()
    assert on_pi5.throttle is not None and on_pi5.throttle.raw == 0x50000
    assert on_pi5.extras["throttle_source"] == "sysfs get_throttled"
    assert ("vcgencmd", "get_throttled") not in runner.calls
    for bad in ("", "0x", "zz", "123456789"):
        with pytest.raises(hal.HalParseError):
            parse_sysfs_throttled(bad)


def test_rpi_volt_alarm_is_under_voltage(tmp_path: Path) -> None:
    """rpi_volt in0_lcrit_alarm = 1 sets under-voltage on top of whatever else reported the flags."""
    build_pi5(tmp_path)
    write(tmp_path, "/sys/class/hwmon/hwmon0/in0_lcrit_alarm", "1\n")
    outputs = {**PI_OUTPUTS_PI5, ("vcgencmd", "get_throttled"): "throttled=0x0\n"}
    reading = hal.open_board({"backend": "rpi", "root": str(tmp_path)}, runner=RecordedRunner(outputs)).read()
    assert reading.throttle is not None and reading.throttle.under_voltage and not reading.throttle.throttled
    assert reading.extras["throttle_source"] == "vcgencmd get_throttled"


def test_compute_module_5_is_a_pi5_in_probe_and_backend(tmp_path: Path) -> None:
    """model = "auto" on a CM5: the backend is a Pi 5 (PMIC rails, hotplug), as detect() says."""
    build_pi5(tmp_path, model="Raspberry Pi Compute Module 5 Rev 1.0")
    detection = hal.detect(str(tmp_path))
    board = hal.open_board({"backend": "rpi", "root": str(tmp_path)}, runner=RecordedRunner(PI_OUTPUTS_PI5))
    assert isinstance(board, RpiBoard)
    assert detection.variant == board.generation == "pi5"
    assert board.identity.hotplug and board.can_offline(2)[0]
    assert "VDD_CORE" in board.read().rails_mw


def test_hung_vcgencmd_never_blocks_a_read(tmp_path: Path) -> None:
    """vcgencmd hanging: the first read waits once (one budget for all four commands), later reads not at all;
    the flags are missing as pending, then carry the answer and its age."""
    release = threading.Event()

    def hanging(argv: Sequence[str]) -> tuple[int, str, str]:
        release.wait(10)
        return RecordedRunner(PI_OUTPUTS_PI5)(argv)

    board = hal.open_board({"backend": "rpi", "root": str(build_pi5(tmp_path))}, runner=hanging)
    assert isinstance(board, RpiBoard)
    board.commands.first_wait_s = 0.3  # four commands waited for one by one would take 1.2 s
    t0 = time.monotonic()
    reading = board.read()
    board.read()
    elapsed = time.monotonic() - t0
    assert elapsed < 0.9, f"two reads took {elapsed:.2f} s while vcgencmd hung"
    assert "pending.vcgencmd.get_throttled" in reading.missing
    assert reading.throttle is not None and str(reading.extras["throttle_source"]).startswith("rpi_volt")
    release.set()
    assert board.commands.wait_idle(5.0)
    later = board.read()
    assert later.throttle is not None and later.throttle.raw == 0x50005
    age = later.extras["throttle_age_s"]
    assert isinstance(age, float) and age >= 0.0


def test_pi5_board(tmp_path: Path) -> None:
    """A Pi 5 reads PMIC rails and sticky flags; a core can go offline but never come back."""
    runner = RecordedRunner(PI_OUTPUTS_PI5)
    board = hal.open_board({"backend": "rpi", "root": str(build_pi5(tmp_path))}, runner=runner)
    reading = board.read()
    assert reading.throttle is not None and reading.throttle.under_voltage
    assert reading.rails_mw["VDD_CORE"] == pytest.approx(4501.1, abs=0.1)
    zone = reading.zone("cpu-thermal")
    assert zone is not None and [t.temp_c for t in zone.trips if t.kind == "active"] == [
        50.0,
        60.0,
        67.5,
        75.0,
    ]
    assert board.can_offline(0) == (False, "cpu0 cannot be taken offline on ARM")
    ok, warning = board.can_offline(3)
    assert ok and "cold boot" in warning
    board.set_core_online(3, False)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-2\n")
    ok, reason = board.can_offline(3, online=True)
    assert not ok and "cold boot" in reason
    with pytest.raises(hal.HalUnsupported, match="cold boot"):
        board.set_core_online(3, True)


def test_pi_without_vcgencmd(tmp_path: Path) -> None:
    """With no vcgencmd binary a Pi 5 reads sysfs: under-voltage only (rpi_volt), vcgencmd listed missing."""
    board = hal.open_board({"backend": "rpi", "root": str(build_pi5(tmp_path))}, runner=RecordedRunner({}))
    reading = board.read()
    assert reading.throttle is not None and reading.throttle.raw == 0 and reading.rails_mw == {}
    assert reading.extras["throttle_source"] == "rpi_volt in0_lcrit_alarm (under-voltage only)"
    assert "vcgencmd.get_throttled" in reading.missing
    assert reading.zone("cpu-thermal") is not None
    shutil.rmtree(tmp_path / "sys/class/hwmon")
    assert hal.open_board({"backend": "rpi", "root": str(tmp_path)}, runner=RecordedRunner({})).read().throttle is None


def test_pi_garbage_outputs(tmp_path: Path) -> None:
    """Garbage command output is a missing field, not an exception."""
    outputs = {k: "\x00garbage\n" for k in PI_OUTPUTS_PI5}
    board = hal.open_board({"backend": "rpi", "root": str(build_pi5(tmp_path))}, runner=RecordedRunner(outputs))
    reading = board.read()
    assert reading.throttle is not None and str(reading.extras["throttle_source"]).startswith("rpi_volt")
    assert reading.extras["vc_temp_c"] is None
    assert {"throttle", "rails.pmic", "vc_temp_c", "core_volts"} <= set(reading.missing)


def test_pi_model_key_is_validated() -> None:
    """hal.model accepts only auto, pi4 or pi5."""
    with pytest.raises(hal.HalConfigError, match=r"^hal\.model: "):
        hal.open_board({"backend": "rpi", "model": "pi3"})
