"""`flightos probe` with a root or settle time that cannot be right: a usage error, not an empty report with exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_root_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    """Was exit 0 with 'proc_stat: /proc/stat unreadable', 'topology.online: could not be read'..."""
    a_file = tmp_path / "tree.tar"
    a_file.write_bytes(b"\0" * 10)
    for root in (str(tmp_path / "missing"), str(a_file)):
        res = cli("probe", "--root", root, "--settle", "0")
        assert res.returncode == 2, res.stdout[-300:]
        said = res.stderr.strip()
        assert said == f"flightos: probe: --root {root}: not a directory (the root of a recorded board tree)"
        assert res.stdout == ""


def test_a_negative_settle_is_refused() -> None:
    """Was read as 0: load was silently not measured ('load needs two reads')."""
    res = cli("probe", "--settle", "-1")
    assert res.returncode == 2 and res.stderr.strip() == "flightos: probe: --settle -1: expected seconds >= 0"
