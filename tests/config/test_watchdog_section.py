"""``[watchdog]``: off by default on the generic linux backend, periods checked, a device maximum enforced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightos.config import target as tgt
from flightos.config.schema import ConfigError


def test_generic_linux_leaves_the_hardware_watchdog_off_unless_opted_in(tmp_path: Path) -> None:
    """A PC running the `linux` target is not armed by default; boards and the simulator still are."""
    assert tgt.load("linux").watchdog.enabled is False
    assert tgt.load("linux", ["watchdog.enabled=true"]).watchdog.enabled is True
    custom = tmp_path / "pc.toml"
    custom.write_text('[hal]\nbackend = "linux"\n')
    assert tgt.load(str(custom)).watchdog.enabled is False
    for name in ("rpi5", "jetson-orin-nano", "sim-radhard"):
        assert tgt.load(name).watchdog.enabled is True, name


def test_pet_period_must_be_shorter_than_the_timeout() -> None:
    """Petting every 12 s a 10 s watchdog would reset the board: a config error naming the key."""
    with pytest.raises(
        ConfigError,
        match=r"rpi5\.toml \(via --set\): watchdog\.pet_period_s: expected less than "
        r"watchdog\.timeout_s \(10 s\), got 12",
    ):
        tgt.load("rpi5", ["watchdog.pet_period_s=12"])


def test_a_timeout_beyond_the_device_maximum_is_a_config_error_at_run(tmp_path: Path) -> None:
    """`flightos run` refuses 90 s on a 60 s watchdog with exit 5 and one line, before any service starts."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightos.cli.main",
            "--runtime-dir",
            str(tmp_path / "rt"),
            "run",
            "--target",
            "sim-radhard",
            "--set",
            "watchdog.timeout_s=90",
            "--duration",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 5, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert (
        "watchdog.timeout_s: expected at most this watchdog's maximum of 60 s (max_timeout in sysfs), got 90"
        in res.stderr
    )
