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


def parse_pairs(items: list[str], what: str = "argument") -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict of typed values; a malformed item is a UsageError naming it."""
    from flightos.cli.errors import UsageError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE")
        out[key] = parse_value(value)
    return out
