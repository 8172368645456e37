"""The hardened unit: ``systemd-analyze security`` scores it, and install warns about paths the unit hides."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flightos.cli import exit_codes as ec
from flightos.cli import install
from flightos.config.schema import ConfigError
from tests.cli.installing import parse

REPO = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 4.0


def _offline_analyze() -> str:
    """'' when ``systemd-analyze security --offline=true`` works here, else why it cannot run."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return "systemd-analyze is not installed (Debian/Ubuntu package 'systemd')"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.match(r"systemd (\d+)", out)
    if m is None or int(m.group(1)) < 252:
        return f"systemd-analyze {m.group(1) if m else '?'} has no 'security --offline' (needs systemd >= 252)"
    return ""


OFFLINE = _offline_analyze()


def dry_run(
    root: Path, capsys: pytest.CaptureFixture[str], *extra: str, python: str = "/opt/flightos/.venv/bin/python"
) -> dict[str, object]:
    """``flightos install --dry-run --json`` into ``root``: the unit text, the steps and the notes."""
    args = parse("--json", "install", "--prefix", str(root), "--python", python, "--dry-run", *extra)
    assert install.run_install(args, runner=lambda argv: (0, "", ""), euid=0) == ec.OK
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def keys(unit: str, key: str) -> list[str]:
    return [line.partition("=")[2] for line in unit.splitlines() if line.startswith(key + "=")]


@pytest.mark.skipif(bool(OFFLINE), reason=OFFLINE)
@pytest.mark.parametrize("target", ["rpi5", "jetson-orin-nano", "linux"])
def test_rendered_unit_scores_at_most_4_in_systemd_analyze_security(
    target: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unit `flightos install` writes is rated exposure <= 4.0 by systemd's own scorer (7.3 before)."""
    unit = str(dry_run(root, capsys, "--target", target)["unit"])
    path = tmp_path / "flightos.service"
    path.write_text(unit)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for flightos\.service: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert m is not None, proc.stdout + proc.stderr
    print(f"{target}: exposure {m.group(1)}")
    assert float(m.group(1)) <= MAX_EXPOSURE, proc.stdout


def test_unit_confines_capabilities_syscalls_families_and_proc(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No capabilities, a system-call allow list, the five socket families (CAN included), own processes only."""
    unit = str(dry_run(root, capsys, "--target", "rpi5")["unit"])
    assert keys(unit, "CapabilityBoundingSet") == [""]
    assert keys(unit, "SystemCallFilter") == ["@system-service", "~@privileged"]
    assert keys(unit, "RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_CAN"]
    assert keys(unit, "ProtectProc") == ["invisible"]
    assert keys(unit, "RestrictNamespaces") == ["yes"]
    assert keys(unit, "Delegate") == ["yes"]
    assert "/dev/watchdog rw" in keys(unit, "DeviceAllow")


def test_memory_and_tasks_limits_follow_the_services(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MemoryMax/TasksMax = the services' memory_mb/tasks summed plus the kernel's headroom; none if one is 0."""
    target = tmp_path / "two.toml"
    target.write_text(
        '[hal]\nbackend = "linux"\n[services.a]\nmemory_mb = 100\ntasks = 10\n'
        "[services.b]\nmemory_mb = 200\ntasks = 20\n[services.c]\nenabled = false\nmemory_mb = 0\n"
    )
    unit = str(dry_run(root, capsys, "--target", str(target))["unit"])
    assert keys(unit, "MemoryMax") == [f"{300 + install.KERNEL_MEMORY_MB}M"]
    assert keys(unit, "TasksMax") == [str(30 + install.KERNEL_TASKS)]
    target.write_text('[hal]\nbackend = "linux"\n[services.a]\nmemory_mb = 0\n')
    unit = str(dry_run(root, capsys, "--target", str(target))["unit"])
    assert keys(unit, "MemoryMax") == [] and keys(unit, "TasksMax") == [f"{256 + install.KERNEL_TASKS}"]


def test_an_interpreter_under_tmp_is_warned_about(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PrivateTmp=yes gives the service an empty /tmp: a venv there could not start, and install says so."""
    notes = str(dry_run(root, capsys, "--target", "rpi5", python="/tmp/venv/bin/python")["notes"])
    assert "/tmp/venv/bin/python lives under /tmp, which PrivateTmp=yes" in notes
    notes = str(dry_run(root, capsys, "--target", "rpi5", python="/home/pi/venv/bin/python")["notes"])
    assert "ProtectHome=read-only" in notes
    unit = str(dry_run(root, capsys, "--target", "rpi5", python="/home/pi/venv/bin/python")["unit"])
    assert keys(unit, "ProtectHome") == ["read-only"]


def test_install_warns_about_a_pc_chipset_watchdog_and_nowayout(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A linux target that opts in to an iTCO watchdog with nowayout is told both things before installing."""
    wd = root / "sys/class/watchdog/watchdog0"
    wd.mkdir(parents=True)
    (wd / "identity").write_text("iTCO_wdt\n")
    (wd / "nowayout").write_text("1\n")
    target = tmp_path / "pc.toml"
    target.write_text('[hal]\nbackend = "linux"\n[watchdog]\nenabled = true\n')
    notes = str(dry_run(root, capsys, "--target", str(target))["notes"])
    assert "/dev/watchdog is a PC chipset watchdog (iTCO_wdt): it resets the whole machine" in notes
    assert "nowayout set: once the kernel opens it, `systemctl stop flightos` cannot disarm it" in notes
    (wd / "max_timeout").write_text("8\n")  # 10 s asked of an 8 s watchdog: refused before anything is written
    with pytest.raises(ConfigError, match=r"watchdog\.timeout_s: expected at most this watchdog's maximum of 8 s"):
        install.run_install(
            parse("install", "--prefix", str(root), "--python", "/opt/v/bin/python", "--target", str(target)),
            runner=lambda argv: (0, "", ""),
            euid=0,
        )
    assert not (root / "etc/systemd").exists()
    target.write_text('[hal]\nbackend = "linux"\n')  # the default on linux: no watchdog, no warning
    unit = dry_run(root, capsys, "--target", str(target))
    assert "watchdog" not in str(unit["notes"]) and "/dev/watchdog rw" not in keys(str(unit["unit"]), "DeviceAllow")


def test_device_allow_lists_the_targets_devices(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each [devices.*] entry is allowed by its node (I2C bus, UART port, SPI bus.cs, a GPIO chip by path)."""
    target = tmp_path / "payload.toml"
    target.write_text(
        '[hal]\nbackend = "rpi"\n[services.test]\n'
        '[devices.imu]\nkind = "i2c"\nbus = 1\naddress = 0x68\nservices = ["test"]\n'
        '[devices.radio]\nkind = "uart"\nport = "/dev/ttyAMA0"\nservices = ["test"]\n'
        '[devices.adc]\nkind = "spi"\nbus = 0\ncs = 1\nservices = ["test"]\n'
        '[devices.led]\nkind = "gpio"\nchip = "pinctrl-rp1"\nline = "GPIO17"\ndirection = "output"\n'
        'services = ["test"]\n'
        '[devices.bus]\nkind = "can"\ninterface = "can0"\nservices = ["test"]\n'
    )
    allowed = keys(str(dry_run(root, capsys, "--target", str(target))["unit"]), "DeviceAllow")
    for node in ("/dev/i2c-1 rw", "/dev/ttyAMA0 rw", "/dev/spidev0.1 rw", "char-gpiochip rw"):
        assert node in allowed, allowed
