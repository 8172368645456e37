"""docs/boards.md's JetPack 5 advice holds: a system Python 3.8 is refused with a clear message, nothing built."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _python38() -> str | None:
    """A Python 3.8 interpreter (JetPack 5's system version) on this machine, if there is one."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    candidates = [shutil.which("python3.8"), *pyenv]
    for path in candidates:
        if (
            path
            and subprocess.run(
                [path, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                capture_output=True,
                timeout=20,
                check=False,
            ).returncode
            == 0
        ):
            return path
    return None


def test_boards_doc_names_the_jetpack5_way() -> None:
    """The guide says how to run on JetPack 5 (an interpreter beside the system one) and what was tested."""
    text = (REPO / "docs/boards.md").read_text()
    assert "make test PYTHON=python3.10" in text and "JetPack 5 ships Python 3.8" in text
    assert "**Not tested:**" in text and "## 10. What the HAL reads, board by board" in text


def test_python38_is_refused_before_a_venv_is_made(tmp_path: Path) -> None:
    """`make venv PYTHON=python3.8` stops with 'flightos needs Python >= 3.10' and creates no venv."""
    py38 = _python38()
    make = shutil.which("make")
    if py38 is None or make is None:
        pytest.skip("needs make and a Python 3.8 interpreter (python3.8 on PATH or a pyenv 3.8)")
    venv = tmp_path / "venv38"
    proc = subprocess.run(
        [make, "-s", "-C", str(REPO), "venv", f"PYTHON={py38}", f"VENV={venv}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "flightos needs Python >= 3.10" in proc.stderr
    assert not venv.exists()
