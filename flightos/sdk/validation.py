"""Checks a command's arguments against the handler's type hints before the handler runs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from flightos.bus.errors import BadArguments
from flightos.sdk.options import non_finite


@dataclass(frozen=True)
class Argument:
    """One declared argument of a command."""

    name: str
    annotation: Any
    required: bool
    default: Any

    @property
    def type_name(self) -> str:
        """The declared type as a user reads it (``int``, ``list[str]``, ``float | None``)."""
        return type_name(self.annotation)


def type_name(tp: Any) -> str:
    """A readable name for a type hint."""
    if tp is Any or tp is inspect.Parameter.empty:
        return "any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def signature_of(fn: Callable[..., Any]) -> list[Argument]:
    """The arguments a command handler declares (``self`` excluded); ``*args`` are not allowed."""
    # Not typing.get_type_hints: on 3.10 it makes ``x: T = None`` Optional[T], so a handler's types (and what
    # describe, validation and the mission database say of them) would differ between Python versions.
    hints = inspect.get_annotations(fn, eval_str=True)
    out: list[Argument] = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"command {fn.__qualname__}: *args/**kwargs are not allowed")
        ann = hints.get(p.name, Any)
        required = p.default is inspect.Parameter.empty
        out.append(Argument(p.name, ann, required, None if required else p.default))
    return out


def validate(command: str, spec: list[Argument], args: Any) -> dict[str, Any]:
    """Return the converted arguments or raise BadArguments naming every problem."""
    if not isinstance(args, dict):
        raise BadArguments(f"{command}: arguments must be a map of name to value, got {type(args).__name__}")
    known = {a.name for a in spec}
    problems: list[str] = []
    unknown = sorted(str(k) for k in args if k not in known)
    if unknown:
        problems.append(f"unexpected argument(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for a in spec:
        if a.name not in args:
            if a.required:
                problems.append(f"missing argument '{a.name}' ({a.type_name})")
            continue
        value = args[a.name]
        if a.annotation is Any:
            out[a.name] = value
            continue
        try:
            out[a.name] = msgspec.convert(value, a.annotation, strict=True)
        except msgspec.ValidationError as exc:
            problems.append(f"argument '{a.name}' expects {a.type_name}: {exc}")
            continue
        bad = non_finite(out[a.name], a.name)
        if bad:  # NaN and infinities pass every bound check a handler would write
            problems.append(f"argument '{bad[0]}' expects a finite number, got {bad[1]!r}")
    if problems:
        raise BadArguments(f"{command}: " + "; ".join(problems), problems=problems)
    return out


def describe_arguments(arguments: Iterable[Argument]) -> list[dict[str, Any]]:
    """A command's typed arguments as ``describe`` shows them (services and the kernel alike)."""
    return [
        {"name": a.name, "type": a.type_name, "required": a.required, "default": a.default if not a.required else None}
        for a in arguments
    ]
