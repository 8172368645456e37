"""Fixtures for the CLI tests: a board's root file system for ``flightos install``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A board's /etc: root, a 'pi' user, and the groups Raspberry Pi OS has (no 'watchdog' group)."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    (r / "etc/group").write_text("root:x:0:\nvideo:x:44:pi\ni2c:x:998:pi\ngpio:x:997:pi\npi:x:1000:\n")
    return r
