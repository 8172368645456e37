"""Suite-wide guards: every runtime a test starts is tagged, and nothing tagged may outlive the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from flightos.kernel.health import speed
from flightos.testing.runtime import ENV_SPEED

# The runtime fixtures (real processes and sockets) serve every component folder.
pytest_plugins = ["tests.runtimes"]

SESSION_TAG = "FLIGHTOS_TEST_SESSION"


def pytest_configure(config: pytest.Config) -> None:
    """Tag this run; runtimes inherit the tag in their environment, so leftovers can be found."""
    os.environ.setdefault(SESSION_TAG, f"{os.getpid()}-{os.urandom(4).hex()}")
    base = Path(tempfile.gettempdir()) / f"fos-tests-{os.environ[SESSION_TAG]}"
    base.mkdir(exist_ok=True)
    os.environ["FLIGHTOS_TEST_BASE"] = str(base)
    # No test may touch a real user's runtime or state by accident.
    os.environ["FLIGHTOS_RUNTIME_DIR"] = str(base / "default-run")
    os.environ["FLIGHTOS_STATE_DIR"] = str(base / "default-state")


def pytest_report_header(config: pytest.Config) -> str:
    """Say what the per-test timeout is on this machine, and why."""
    factor = _speed_factor()
    return f"per-test timeout {_base_timeout(config) * factor:g} s (pyproject timeout x speed factor {factor:g})"


def _speed_factor() -> float:
    """This machine's speed factor (the kernel's own benchmark), measured once per run."""
    if ENV_SPEED not in os.environ:  # RuntimeProcess scales its waits by it too
        os.environ[ENV_SPEED] = str(speed.measure())
    return float(os.environ[ENV_SPEED])


def _base_timeout(config: pytest.Config) -> float:
    return float(config.getini("timeout") or 60)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The per-test timeout is pyproject's (set for the reference machine) x this machine's speed factor."""
    limit = _base_timeout(config) * _speed_factor()
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


def tagged_processes() -> list[tuple[int, str]]:
    """Processes (other than this one) carrying this run's tag in their environment."""
    tag = f"{SESSION_TAG}={os.environ[SESSION_TAG]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
            if tag in env.split(b"\0"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
                if state != "Z":
                    found.append((int(entry.name), cmd.strip()))
        except OSError:
            continue
    return found


def leftovers(base: Path) -> list[str]:
    """Runtime directories or socket files a test left behind."""
    out = []
    for p in base.rglob("*"):
        if p.name.endswith(".sock") or p.name == "kernel.pid":
            out.append(str(p))
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any process, socket file or runtime directory it started remains."""
    if hasattr(session.config, "workerinput"):
        return
    base = Path(os.environ["FLIGHTOS_TEST_BASE"])
    procs = tagged_processes()
    files = leftovers(base)
    if procs or files:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["the test run left things behind:"]
        lines += [f"  process {pid}: {cmd}" for pid, cmd in procs]
        lines += [f"  file {f}" for f in files]
        if tr is not None:
            tr.write_line("\n".join(lines), red=True)
        for pid, _ in procs:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(base, ignore_errors=True)
