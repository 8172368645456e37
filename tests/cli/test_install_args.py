"""`flightos install` as a user types it: a bad --user is refused, and the unit grants each device once."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_user_name_systemd_would_misread_is_refused() -> None:
    """Was accepted: the dry run printed a unit with 'User=bad user' and planned useradd for it."""
    for user in ("bad user", "0day", "-x", "Pi"):
        res = cli("install", "--target", "rpi5", "--dry-run", f"--user={user}")
        assert res.returncode == 2, (user, res.stdout[-300:], res.stderr)
        assert res.stderr.startswith(f"flightos: install: --user {user!r}: expected a system user name"), res.stderr
        assert "User=" not in res.stdout


def test_each_device_is_allowed_once() -> None:
    """sim-devices' gpio table and the board's own GPIO entry both gave 'DeviceAllow=char-gpiochip rw'."""
    res = cli("install", "--target", "sim-devices", "--dry-run")
    assert res.returncode == 0, res.stderr
    allow = [line for line in res.stdout.splitlines() if line.startswith("DeviceAllow=")]
    assert "DeviceAllow=char-gpiochip rw" in allow and "DeviceAllow=/dev/ttyAMA0 rw" in allow
    assert len(allow) == len(set(allow)), allow
