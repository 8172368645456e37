"""`flightos logs SERVICE [--follow]` against a running simulated runtime: one service's lines, live."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flightos.cli import logs as logs_command
from flightos.cli.errors import UsageError
from flightos.testing import RuntimeProcess
from tests.runtimes import make_runtime


def logs_cli(rt: RuntimeProcess, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "--runtime-dir", str(rt.runtime_dir), "logs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


async def test_logs_shows_one_service_and_follows_its_restart() -> None:
    """The test service's own lines (not housekeeping's), an unknown name lists the known ones (exit 2),
    --follow prints the restarted incarnation's lines as they are written, and after the stop the target's
    state directory still has them (--target), while without a runtime or a target it is exit 3."""
    async with make_runtime(["test", "housekeeping"]) as rt:
        shown = logs_cli(rt, "test")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert any("service.ready" in line and "incarnation=1" in line for line in lines), shown.stdout
        assert any("service_ready: test ready" in line for line in lines), shown.stdout  # the kernel's line
        assert all("service=housekeeping" not in line for line in lines)

        unknown = logs_cli(rt, "camera")
        assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
        assert "unknown service 'camera' (known: housekeeping, kernel, test)" in unknown.stderr

        follow = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flightos.cli.main",
            "--runtime-dir",
            str(rt.runtime_dir),
            "logs",
            "test",
            "--follow",
            "--lines",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            assert follow.stdout is not None
            os.kill((await rt.service("test"))["pid"], signal.SIGKILL)
            seen: list[str] = []

            async def restarted() -> None:
                while not any("service.ready" in s and "incarnation=2" in s for s in seen):
                    seen.append((await follow.stdout.readline()).decode())  # type: ignore[union-attr]

            try:
                await asyncio.wait_for(restarted(), timeout=20)
            except asyncio.TimeoutError:
                raise AssertionError(f"no incarnation=2 line followed; saw: {seen}") from None
        finally:
            follow.terminate()
            await follow.wait()

        # stopped: its runtime directory is gone, the target's state directory keeps the files
        assert await rt.stop() == 0
        after = logs_cli(
            rt, "test", "--target", "sim-radhard", "-n", "0", env={"FLIGHTOS_STATE_DIR": str(rt.state_dir)}
        )
        assert after.returncode == 0 and "incarnation=2" in after.stdout, after.stderr
        gone = logs_cli(rt, "test")
        assert gone.returncode == 3 and "name a target with --target" in gone.stderr


def test_installed_under_systemd_logs_come_from_journalctl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """With flightos.service installed and no runtime logs, `flightos logs` asks journalctl for the unit's
    entries of that service (-f, -n passed on), and knows the services the journal has seen."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "journalctl"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        'case "$*" in *"-F FLIGHTOS_SERVICE"*) printf "camera\\nkernel\\n";; '
        '*) echo "2026-12-07T19:00:00+0000 sat flightos[42]: service.ready incarnation=1";; esac\n'
    )
    fake.chmod(0o755)
    unit = tmp_path / "flightos.service"
    unit.write_text("[Service]\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(logs_command, "UNIT_FILE", str(unit))
    args = argparse.Namespace(
        service="camera", follow=True, lines=5, target=None, runtime_dir=str(tmp_path / "no-runtime"), json=False
    )
    assert logs_command.run_logs(args) == 0
    assert "flightos[42]: service.ready incarnation=1" in capfd.readouterr().out
    assert calls.read_text().splitlines() == [
        "-u flightos -F FLIGHTOS_SERVICE",
        "-u flightos FLIGHTOS_SERVICE=camera -o short-iso --no-pager -n 5 --follow",
    ]
    args.service = "radio"
    with pytest.raises(UsageError, match=r"unknown service 'radio' \(known: camera, kernel\)"):
        logs_command.run_logs(args)
