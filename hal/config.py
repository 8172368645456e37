"""Validation of the ``[hal]`` table: a small schema per backend, errors that name the key."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hal.errors import HalConfigError

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Key:
    """One config key: its checker, default (None = required or computed) and a one-line doc."""

    name: str
    check: Check
    default: Any
    doc: str
    kind: str


def _describe(value: Any) -> str:
    return repr(value)


def positive_int(key: str, value: Any) -> int:
    """An int > 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise HalConfigError(key, f"expected a positive integer, got {_describe(value)}")
    return value


def non_negative_int(key: str, value: Any) -> int:
    """An int >= 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HalConfigError(key, f"expected an integer >= 0, got {_describe(value)}")
    return value


def _number(key: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HalConfigError(key, f"expected {what}, got {_describe(value)}")
    return float(value)


def non_negative_float(key: str, value: Any) -> float:
    """A finite number >= 0."""
    number = _number(key, value, "a number >= 0")
    if number < 0:
        raise HalConfigError(key, f"expected a number >= 0, got {_describe(value)}")
    return number


def positive_float(key: str, value: Any) -> float:
    """A finite number > 0."""
    number = _number(key, value, "a number > 0")
    if number <= 0:
        raise HalConfigError(key, f"expected a number > 0, got {_describe(value)}")
    return number


def fraction(key: str, value: Any) -> float:
    """A number in [0, 1]."""
    number = _number(key, value, "a number between 0 and 1")
    if not 0.0 <= number <= 1.0:
        raise HalConfigError(key, f"expected a number between 0 and 1, got {_describe(value)}")
    return number


def any_float(key: str, value: Any) -> float:
    """Any finite number."""
    return _number(key, value, "a number")


def string(key: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise HalConfigError(key, f"expected a non-empty string, got {_describe(value)}")
    return value


def boolean(key: str, value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise HalConfigError(key, f"expected true or false, got {_describe(value)}")
    return value


def choice(*options: str) -> Check:
    """One of the given strings."""

    def check(key: str, value: Any) -> str:
        if value not in options:
            allowed = ", ".join(repr(o) for o in options)
            raise HalConfigError(key, f"expected one of {allowed}, got {_describe(value)}")
        return str(value)

    return check


def cpu_list(key: str, value: Any) -> list[int]:
    """A non-empty list of distinct CPU numbers >= 0."""
    if not isinstance(value, (list, tuple)) or not value:
        raise HalConfigError(key, f"expected a non-empty list of CPU numbers, got {_describe(value)}")
    out: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise HalConfigError(key, f"expected CPU numbers >= 0, got {_describe(item)}")
        if item in out:
            raise HalConfigError(key, f"CPU {item} is listed twice")
        out.append(item)
    return out


COMMON: tuple[Key, ...] = (
    Key("backend", choice("linux", "sim", "rpi", "jetson"), None, "which backend (required)", "str"),
    Key("root", string, "/", "filesystem root every sysfs/procfs read goes through", "str"),
    Key("command_timeout_s", positive_float, 2.0, "timeout of helper commands", "float"),
)


def validate(config: Mapping[str, Any], keys: tuple[Key, ...]) -> dict[str, Any]:
    """Check ``config`` against ``keys``; return a dict with defaults filled in."""
    if not isinstance(config, Mapping):
        raise HalConfigError("<table>", f"expected a table of keys, got {_describe(config)}")
    known = {k.name: k for k in keys}
    for name in config:
        if name not in known:
            raise HalConfigError(str(name), f"unknown key for backend {config.get('backend')!r}")
    out: dict[str, Any] = {}
    for key in keys:
        if key.name in config:
            out[key.name] = key.check(key.name, config[key.name])
        else:
            out[key.name] = key.default
    return out


def schema_markdown(keys: tuple[Key, ...]) -> str:
    """A markdown table of a schema, for hal/README.md."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in keys:
        default = "required" if k.name == "backend" else ("computed" if k.default is None else f"`{k.default!r}`")
        lines.append(f"| `{k.name}` | {k.kind} | {default} | {k.doc} |")
    return "\n".join(lines)
