"""Typed service options: a service declares the ``[services.<name>.options]`` table it reads as a schema.

The kernel checks every enabled service's options against its schema when the target loads, so a
wrong option is a configuration error (exit 5, the key named) instead of a service that crash-loops.
A service subclasses :class:`Options`, sets ``options_schema`` and reads ``self.config``::

    class CameraOptions(Options):
        exposure_ms: int = 10
        gain: float = 1.0

        def __post_init__(self) -> None:
            if not 1 <= self.exposure_ms <= 1000:
                raise self.invalid("exposure_ms", "an integer in 1..1000")

NaN and infinities are refused in every float field (nested structs, lists and tables included) by the
base class, before a subclass's own ``__post_init__`` runs.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

OptionsT = TypeVar("OptionsT", bound="Options")

_MISSING = object()
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*): (.*)$", re.S)
_TYPE_ERROR = re.compile(r"^Expected `(.+?)`(.*?), got `(.+?)`$", re.S)
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
    "int | float": "a number",
}


def non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """(path, value) of the first NaN or infinity inside ``value`` (floats, lists, tables, structs), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    found: tuple[str, float] | None = None
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            found = found or non_finite(item, f"{where}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found = found or non_finite(item, f"{where}.{key}")
    elif isinstance(value, msgspec.Struct) and not isinstance(value, Options):  # Options check themselves
        for name in value.__struct_fields__:
            found = found or non_finite(getattr(value, name), f"{where}.{name}")
    return found


def _lookup(raw: Any, path: str) -> Any:
    """The value at a dotted/indexed ``path`` in a raw table, or _MISSING."""
    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(node, (list, tuple)) or idx >= len(node):
                return _MISSING
            node = node[idx]
        else:
            if not isinstance(node, Mapping) or part not in node:
                return _MISSING
            node = node[part]
    return node


def _join(*parts: str) -> str:
    out = ""
    for p in parts:
        if not p:
            continue
        out = p if not out else (out + p if p.startswith("[") else f"{out}.{p}")
    return out


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of a service's typed options: fields with defaults, checks in ``__post_init__``.

    Raise ``self.invalid(field, expectation)`` (a ValueError naming the field) from ``__post_init__``
    for a value the types alone do not rule out. Unknown keys are errors.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own: Callable[[Any], None] | None = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "__flightos_finite__", False):

            @functools.wraps(own)
            def post_init(self: Options) -> None:
                self._check_finite()
                own(self)

            post_init.__flightos_finite__ = True  # type: ignore[attr-defined]
            setattr(cls, "__post_init__", post_init)  # noqa: B010 (mypy: assigning to a method)

    def __post_init__(self) -> None:
        self._check_finite()

    def _check_finite(self) -> None:
        for name in self.__struct_fields__:
            found = non_finite(getattr(self, name), name)
            if found:
                raise ValueError(f"{found[0]}: expected a finite number, got {found[1]!r}")

    def invalid(self, field: str, expected: str) -> ValueError:
        """The error to raise from ``__post_init__``: ``<field>: expected <expected>, got <value>``."""
        value = _lookup({n: getattr(self, n) for n in self.__struct_fields__}, field)
        return ValueError(f"{field}: expected {expected}, got {value!r}")


class OptionsError(ValueError):
    """A service's options do not fit its schema: ``services.<name>.options.<path>: <expected>, got <value>``."""

    def __init__(self, service: str, path: str, detail: str) -> None:
        self.service = service
        self.path = path
        self.key = _join(f"services.{service}.options", path)
        """The full dotted key, as a target file or ``--set`` spells it."""
        self.detail = detail
        """What was expected and what was given."""
        super().__init__(f"{self.key}: {detail}")


def _describe(exc: msgspec.ValidationError, raw: Mapping[str, Any], schema: type[Options]) -> tuple[str, str]:
    """(path below the options table, "expected …, got …") for a msgspec validation error."""
    text = str(exc)
    at = ""
    m = re.search(r" - at `\$(.*)`$", text, re.S)
    if m:
        text, at = text[: m.start()], m.group(1).lstrip(".")
    unknown = re.match(r"^Object contains unknown field `(.+)`$", text)
    if unknown:
        path = _join(at, unknown.group(1))
        known = ""
        if not at:
            known = (
                " (known: " + ", ".join(schema.__struct_fields__) + ")"
                if schema.__struct_fields__
                else " (this service takes no options)"
            )
        return path, f"unknown option{known}"
    missing = re.match(r"^Object missing required field `(.+)`$", text)
    if missing:
        return _join(at, missing.group(1)), "missing: a required option"
    typed = _TYPE_ERROR.match(text)
    if typed:
        want = _TYPE_WORDS.get(typed.group(1), typed.group(1)) + typed.group(2)
        got = _lookup(raw, at)
        return at, f"expected {want}, got {got!r}" if got is not _MISSING else f"expected {want}"
    named = _FIELD_PREFIX.match(text)  # a ValueError from __post_init__ that names its field
    if named:
        path = _join(at, named.group(1))
        detail = named.group(2)
        if ", got " not in detail:
            got = _lookup(raw, path)
            detail += f", got {got!r}" if got is not _MISSING else ""
        return path, detail
    if text.startswith("Expected "):
        text = "expected " + text[len("Expected ") :]
    return at, text.replace("`", "")


def check_options(schema: type[OptionsT], raw: Mapping[str, Any] | None, service: str) -> OptionsT | OptionsError:
    """``raw`` (the options table) converted to ``schema``, or the error naming the key and the expectation."""
    table = dict(raw or {})
    try:
        return msgspec.convert(table, type=schema)
    except msgspec.ValidationError as exc:
        path, detail = _describe(exc, table, schema)
        return OptionsError(service, path, detail)


def load_options(schema: type[OptionsT], raw: Mapping[str, Any] | None, service: str) -> OptionsT:
    """Like :func:`check_options`, raising the OptionsError instead of returning it."""
    result = check_options(schema, raw, service)
    if isinstance(result, OptionsError):
        raise result
    return result
