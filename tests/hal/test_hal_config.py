"""The [hal] table: unknown keys and bad values are errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hal


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "backend"),
        ({"backend": "vax"}, "backend"),
        ({"backend": "linux", "colour": "red"}, "colour"),
        ({"backend": "linux", "root": 3}, "root"),
        ({"backend": "linux", "command_timeout_s": -1}, "command_timeout_s"),
        ({"backend": "linux", "watchdog_device": "dev/watchdog"}, "watchdog_device"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], key: str) -> None:
    """A wrong [hal] table fails with a HalConfigError whose text starts with hal.<key>."""
    with pytest.raises(hal.HalConfigError) as info:
        hal.open_board(config)
    assert info.value.key == key
    assert str(info.value).startswith(f"hal.{key}: ")


def test_not_a_table() -> None:
    """Passing something other than a mapping is a config error, not a TypeError."""
    with pytest.raises(hal.HalConfigError):
        hal.open_board(["linux"])  # type: ignore[arg-type]


def test_linux_defaults(tmp_path: Path) -> None:
    """A minimal table opens a board with documented defaults."""
    board = hal.open_board({"backend": "linux", "root": str(tmp_path)})
    assert board.identity.backend == "linux"
