"""A failed command's traceback costs the service's loop next to nothing: plain text, not rich with locals."""

from __future__ import annotations

import os
import subprocess
import sys

PROGRAM = r"""
import sys, time
import structlog
from flightos import logs
logs.configure("console", "info", "svc")
log = structlog.get_logger("t")
def deep(n):
    big = {i: list(range(50)) for i in range(200)}  # locals a rich traceback would render
    if n == 0:
        raise ValueError("boom")
    deep(n - 1)
try:
    deep(8)
except ValueError:
    t0 = time.perf_counter()
    log.exception("service.command_failed")
    print(f"took {time.perf_counter() - t0:.4f}", file=sys.stdout)
"""


def run(env: dict[str, str] | None = None) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return float(out.stdout.split()[-1]), out.stderr


def test_console_tracebacks_are_plain_and_quick_by_default() -> None:
    """The default console log has the plain traceback (every frame, the error) and no locals."""
    took, err = run({"FLIGHTOS_RICH_TRACEBACKS": "0"})
    assert "Traceback (most recent call last)" in err and "ValueError: boom" in err
    assert "big = " not in err and "locals" not in err.lower()
    assert took < 0.2, f"formatting one traceback took {took:.3f} s on the service's loop"


def test_rich_tracebacks_are_a_developers_opt_in() -> None:
    """FLIGHTOS_RICH_TRACEBACKS=1 brings rich tracebacks with locals back, for a developer's console."""
    _, err = run({"FLIGHTOS_RICH_TRACEBACKS": "1"})
    assert "ValueError" in err and "big" in err  # the locals are rendered
