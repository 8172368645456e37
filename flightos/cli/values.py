"""Values typed on the command line."""

from __future__ import annotations

from typing import Any

from flightos.config import toml


def parse_value(text: str) -> Any:
    """A TOML literal (number, bool, string, array, inline table), else the text itself."""
    try:
        return toml.loads(f"v = {text}")["v"]
    except toml.TOMLDecodeError:
        return text
