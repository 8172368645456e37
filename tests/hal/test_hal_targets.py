"""Every targets/*.toml has a [hal] table the HAL accepts (without importing flightos)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import hal
from hal.testing.trees import (
    NANO_OUTPUTS,
    ORIN_OUTPUTS,
    PI_OUTPUTS_PI4,
    PI_OUTPUTS_PI5,
    RecordedRunner,
    build_generic,
    build_nano,
    build_orin_nano,
    build_pi4,
    build_pi5,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib

TARGETS = Path(__file__).resolve().parents[2] / "targets"
FILES = sorted(p.name for p in TARGETS.glob("*.toml"))
#: Sections the kernel's target schema knows (flightos/config/schema.py plus hal and services).
SECTIONS = {
    "target",
    "runtime",
    "health",
    "restart",
    "cores",
    "modes",
    "thermal",
    "power",
    "watchdog",
    "hal",
    "services",
    "link",
    "acl",
    "devices",
}
SERVICE_KEYS = {
    "enabled", "criticality", "restart", "cores", "heartbeat_period_s", "heartbeat_misses", "params", "options",
    "failover", "plugin",
}  # fmt: skip

Builder = Callable[[Path], Path]


def tree_for(table: Mapping[str, Any]) -> tuple[Builder, Mapping[tuple[str, ...], str]]:
    """The recorded tree (and command outputs) that stands in for a target's board."""
    backend = table["backend"]
    if backend == "rpi":
        return (build_pi5, PI_OUTPUTS_PI5) if table.get("model") == "pi5" else (build_pi4, PI_OUTPUTS_PI4)
    if backend == "jetson":
        return (build_nano, NANO_OUTPUTS) if table.get("jetpack") == "4" else (build_orin_nano, ORIN_OUTPUTS)
    return build_generic, {}


def read(name: str) -> dict[str, Any]:
    with open(TARGETS / name, "rb") as fh:
        return tomllib.load(fh)


def test_expected_targets_exist() -> None:
    assert {
        "sim-radhard.toml", "linux.toml", "sim-cots.toml", "rpi4.toml", "rpi5.toml",
        "jetson-nano.toml", "jetson-orin-nano.toml",
    } <= set(FILES)  # fmt: skip


@pytest.mark.parametrize("name", FILES)
def test_target_shape(name: str) -> None:
    """Known sections only, a comment header, housekeeping (essential) and test (elastic) on a standalone board."""
    raw = read(name)
    assert set(raw) <= SECTIONS
    assert (TARGETS / name).read_text().startswith("# ")
    services = raw["services"]
    if "link" in raw:  # one board of several: service names are unique across boards, each plugin runs once
        assert {t.get("plugin", n) for n, t in services.items()} & {"housekeeping", "test"}
    else:
        assert services["housekeeping"]["criticality"] == "essential"
        assert services["test"]["criticality"] == "elastic"
    for table in services.values():
        assert set(table) <= SERVICE_KEYS


@pytest.mark.parametrize("name", FILES)
def test_hal_table_opens(name: str, tmp_path: Path) -> None:
    """Sim tables open as they are; board tables validate and open on their recorded tree."""
    table = read(name)["hal"]
    checked = hal.check_config(table)
    assert checked["backend"] == table["backend"]
    if table["backend"] == "sim":
        board = hal.open_board(table)
        try:
            assert board.identity.backend == "sim" and board.read().missing == []
        finally:
            board.close()
        return
    build, outputs = tree_for(table)
    root = build(tmp_path)
    board = hal.open_board({**table, "root": str(root)}, runner=RecordedRunner(outputs))
    assert board.identity.backend == table["backend"]
    detected = hal.detect(str(root))
    assert detected.backend == table["backend"]
    if table["backend"] == "rpi":
        assert detected.variant == table["model"] == board.identity.details["generation"]
    if table["backend"] == "jetson" and table.get("jetpack", "auto") != "auto":
        assert board.identity.details["jetpack"] == table["jetpack"] == str(detected.jetpack)


def test_sim_cots_uses_cots_rates() -> None:
    settings = hal.check_config(read("sim-cots.toml")["hal"])
    assert settings["profile"] == "cots"
    assert settings["seu_rate_per_bit_day"] == 2e-7 and settings["sel_rate_per_day"] == pytest.approx(1 / 300)


def test_check_config_names_the_key() -> None:
    with pytest.raises(hal.HalConfigError) as info:
        hal.check_config({"backend": "rpi", "model": "pi3"})
    assert info.value.key == "model"
    with pytest.raises(hal.HalConfigError) as info:
        hal.check_config({"backend": "jetson", "cores": 4})
    assert info.value.key == "cores"
    with pytest.raises(hal.HalConfigError):
        hal.check_config({})
    with pytest.raises(hal.HalConfigError):
        hal.check_config({"backend": "vax"})


@pytest.mark.parametrize("name", ["rpi4.toml", "rpi5.toml"])
def test_pi_targets_govern_against_the_firmware_soft_throttle(name: str, tmp_path: Path) -> None:
    """A Pi zone has no passive trip (only critical 110 C and fan trips): the target supplies 80 C."""
    raw = read(name)
    assert raw["thermal"]["trip_c"] == 80.0
    build, outputs = tree_for(raw["hal"])
    board = hal.open_board({**raw["hal"], "root": str(build(tmp_path))}, runner=RecordedRunner(outputs))
    zone = board.read().zone("cpu-thermal")
    assert zone is not None and zone.trip("passive") is None and zone.trip("hot") is None
